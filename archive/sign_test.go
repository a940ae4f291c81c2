package archive

import "crypto/ed25519"

func ed25519Sign(k ed25519.PrivateKey, b []byte) []byte { return ed25519.Sign(k, b) }
