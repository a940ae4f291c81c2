package carriers

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"ferry/bundle"
)

// ProtocolVersion is the session protocol's version, the first byte of a
// hello. A node refuses a version it does not speak, and says so.
const ProtocolVersion = 1

// Reasons a session ends early. Each is wrapped with what happened; test
// with errors.Is.
var (
	// ErrUntrusted means the peer's key is not one of this node's trusted
	// peers (or not the peer that was dialed). The peer is told why.
	ErrUntrusted = errors.New("carriers: peer not trusted")
	// ErrAuth means the peer's hello signature does not verify: it does
	// not hold the key it claims.
	ErrAuth = errors.New("carriers: peer failed authentication")
	// ErrStalled means the peer sent nothing for longer than the idle
	// deadline.
	ErrStalled = errors.New("carriers: peer stalled")
	// ErrBadBundle means the peer sent bytes that are not the bundle it
	// offered: another bundle, or a damaged one. Nothing of it is kept.
	ErrBadBundle = errors.New("carriers: peer sent a bundle other than the one it offered")
)

// RefusedError reports that the peer ended the session, and why.
type RefusedError struct {
	Peer   string // the peer's name or short ID
	Reason string // as the peer gave it
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("carriers: refused by %s: %s", e.Peer, e.Reason)
}

// maxReason bounds the reason a refusal carries.
const maxReason = 512

// hello opens a session: who the sender is, and a fresh challenge.
type hello struct {
	version byte
	id      bundle.NodeID
	nonce   [16]byte
}

func newHello(id bundle.NodeID) (hello, error) {
	h := hello{version: ProtocolVersion, id: id}
	if _, err := rand.Read(h.nonce[:]); err != nil {
		return h, err
	}
	return h, nil
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, 1+32+16)
	b = append(b, h.version)
	b = append(b, h.id[:]...)
	return append(b, h.nonce[:]...)
}

func parseHello(m *message) (hello, error) {
	r := newReader(m)
	var h hello
	h.version = r.byte()
	if r.err == nil && h.version != ProtocolVersion {
		return h, fmt.Errorf("%w: protocol version %d, this node speaks %d", ErrProtocol, h.version, ProtocolVersion)
	}
	copy(h.id[:], r.bytes(32))
	copy(h.nonce[:], r.bytes(16))
	return h, r.end()
}

// auth proves the sender holds its key, for this session, and carries the
// digest of its inventory.
type auth struct {
	sig    [ed25519.SignatureSize]byte
	digest [16]byte
}

// transcript is what a node signs: both hellos as the signer saw them,
// the link's channel binding, and the signer's inventory digest.
func transcript(signer, peer hello, binding []byte, digest [16]byte) []byte {
	b := []byte("ferry-session-1\x00")
	b = append(b, signer.marshal()...)
	b = append(b, peer.marshal()...)
	b = binary.AppendUvarint(b, uint64(len(binding)))
	b = append(b, binding...)
	return append(b, digest[:]...)
}

func (a *auth) marshal() []byte {
	return append(append([]byte(nil), a.sig[:]...), a.digest[:]...)
}

func parseAuth(m *message) (auth, error) {
	r := newReader(m)
	var a auth
	copy(a.sig[:], r.bytes(ed25519.SignatureSize))
	copy(a.digest[:], r.bytes(16))
	return a, r.end()
}
