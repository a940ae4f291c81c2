package node

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"ferry/bundle"
)

// File names in the data directory.
const (
	keyFile      = "node.key"
	identityFile = "identity.txt"
	dbFile       = "ferry.db"
	spoolDir     = "spool"
)

// Identity is a node's secret keys: an ed25519 key that signs its bundles
// and cards, and an age X25519 identity that decrypts what is sent to it.
type Identity struct {
	Sign ed25519.PrivateKey
	Age  *age.X25519Identity
}

// GenerateIdentity makes a new random identity.
func GenerateIdentity() (*Identity, error) {
	_, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	ai, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return &Identity{Sign: sk, Age: ai}, nil
}

// ID returns the node's ID: its ed25519 public key.
func (id *Identity) ID() bundle.NodeID {
	var n bundle.NodeID
	copy(n[:], id.Sign.Public().(ed25519.PublicKey))
	return n
}

// save writes the identity into dir, refusing to overwrite.
func (id *Identity) save(dir string) error {
	der, err := x509.MarshalPKCS8PrivateKey(id.Sign)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeNew(filepath.Join(dir, keyFile), keyPEM); err != nil {
		return err
	}
	ageText := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), id.Age.Recipient(), id.Age)
	return writeNew(filepath.Join(dir, identityFile), []byte(ageText))
}

// loadIdentity reads the identity from dir.
func loadIdentity(dir string) (*Identity, error) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("node: read signing key: %w", err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("node: %s: not a PEM private key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", keyFile, err)
	}
	sk, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("node: %s: not an ed25519 key", keyFile)
	}
	ageText, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return nil, fmt.Errorf("node: read age identity: %w", err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(ageText)))
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", identityFile, err)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("node: %s: want one identity, found %d", identityFile, len(ids))
	}
	ai, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("node: %s: not an X25519 identity", identityFile)
	}
	return &Identity{Sign: sk, Age: ai}, nil
}

// writeNew writes a new file with mode 0600 and syncs it; it refuses to
// overwrite an existing file.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("node: %s already exists", path)
		}
		return fmt.Errorf("node: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("node: sync %s: %w", path, err)
	}
	return f.Close()
}
