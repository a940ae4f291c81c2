package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Magic opens every bundle of format version 1. The version lives in the
// magic itself: a reader that does not know a version refuses it at the
// first bytes.
const Magic = "FERRY\x00\x00\x01"

// magicPrefix is what every version of the format starts with.
const magicPrefix = "FERRY\x00"

// fixedHeaderSize is the size of the fixed part of a version 1 header.
const fixedHeaderSize = 156

// SignatureSize is the size of the ed25519 signature that follows the header.
const SignatureSize = ed25519.SignatureSize

// Kind says what a bundle carries, so that carriers can order and filter
// bundles they cannot read. The values are wire constants.
type Kind uint8

// Bundle kinds.
const (
	KindMessages Kind = 0x01 // messages and receipts between people
	KindArchive  Kind = 0x02 // archive manifests and chunks
	KindAnnounce Kind = 0x03 // node announcements
	KindKeys     Kind = 0x04 // group keys for members
)

func (k Kind) String() string {
	switch k {
	case KindMessages:
		return "messages"
	case KindArchive:
		return "archive"
	case KindAnnounce:
		return "announce"
	case KindKeys:
		return "keys"
	}
	return fmt.Sprintf("kind(0x%02x)", uint8(k))
}

// DestType says what a destination names. The values are wire constants.
type DestType uint8

// Destination types.
const (
	DestNode     DestType = 0x01 // one node, by its signing key
	DestGroup    DestType = 0x02 // a group (a room shared by communities), by its key
	DestEveryone DestType = 0x03 // every node of the network
)

func (t DestType) String() string {
	switch t {
	case DestNode:
		return "node"
	case DestGroup:
		return "group"
	case DestEveryone:
		return "everyone"
	}
	return fmt.Sprintf("dest(0x%02x)", uint8(t))
}

// NodeID identifies a node: its ed25519 public key.
type NodeID [32]byte

// String returns the key in lowercase hex.
func (id NodeID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits of the key, for humans.
func (id NodeID) Short() string { return hex.EncodeToString(id[:6]) }

// PublicKey returns the key as an ed25519.PublicKey.
func (id NodeID) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(id[:]) }

// ParseNodeID parses the 64-digit hex form of a node ID.
func ParseNodeID(s string) (NodeID, error) {
	var id NodeID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("bundle: node id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("bundle: node id %q: %w", s, err)
	}
	return id, nil
}

// Destination names who a bundle is for.
type Destination struct {
	Type DestType
	ID   [32]byte // a node's signing key or a group's key; zero for DestEveryone
}

// ToNode returns the destination of one node.
func ToNode(id NodeID) Destination { return Destination{Type: DestNode, ID: id} }

// ID identifies a bundle: the SHA-256 of its signed bytes (magic, header
// length and header). It is stable, verifiable and the key for
// deduplication and inventories.
type ID [32]byte

// String returns the ID in lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the 64-digit hex form of a bundle ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("bundle: id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("bundle: id %q: %w", s, err)
	}
	return id, nil
}

// Header is the signed, cleartext description of a bundle.
type Header struct {
	Kind     Kind
	Priority uint8 // 0 is the most urgent
	HopLimit uint8 // how many carriers may pass the bundle on; 0 means no limit
	Source   NodeID
	Dest     Destination
	Seq      uint64    // the source's sequence number for this bundle, from 1
	Created  time.Time // stored in whole seconds
	Expires  time.Time // stored in whole seconds; the zero time means never

	// Set by the writer when the payload is complete.
	ContentSize uint64   // bytes of the decompressed record stream
	PayloadSize uint64   // bytes of the payload (the age file)
	PayloadHash [32]byte // SHA-256 of the payload
	Nonce       [16]byte // random, so that no two bundles share an ID

	// Extensions are optional fields after the fixed part, kept as they
	// were signed. Readers refuse a critical extension (type ≥ 0x80) they
	// do not know.
	Extensions []Extension
}

// Extension is an optional header field.
type Extension struct {
	Type  uint8
	Value []byte
}

// Expired reports whether the bundle has expired at now.
func (h *Header) Expired(now time.Time) bool {
	return !h.Expires.IsZero() && !now.Before(h.Expires)
}

// size returns the encoded size of the header.
func (h *Header) size() int {
	n := fixedHeaderSize
	for _, e := range h.Extensions {
		n += 1 + uvarintLen(uint64(len(e.Value))) + len(e.Value)
	}
	return n
}

// appendBinary appends the encoded header to b.
func (h *Header) appendBinary(b []byte) []byte {
	b = append(b, byte(h.Kind), h.Priority, h.HopLimit, byte(h.Dest.Type))
	b = append(b, h.Source[:]...)
	b = append(b, h.Dest.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(unixOrZero(h.Created)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixOrZero(h.Expires)))
	b = binary.BigEndian.AppendUint64(b, h.ContentSize)
	b = binary.BigEndian.AppendUint64(b, h.PayloadSize)
	b = append(b, h.PayloadHash[:]...)
	b = append(b, h.Nonce[:]...)
	for _, e := range h.Extensions {
		b = append(b, e.Type)
		b = binary.AppendUvarint(b, uint64(len(e.Value)))
		b = append(b, e.Value...)
	}
	return b
}

// SignedBytes returns magic | uvarint(len(header)) | header: the bytes the
// signature covers and the ID hashes.
func (h *Header) SignedBytes() []byte {
	b := make([]byte, 0, len(Magic)+3+h.size())
	b = append(b, Magic...)
	b = binary.AppendUvarint(b, uint64(h.size()))
	return h.appendBinary(b)
}

// ID returns the bundle ID of the header as it stands.
func (h *Header) ID() ID { return sha256.Sum256(h.SignedBytes()) }

// parseHeader decodes a version 1 header. It checks structure only; the
// caller checks the signature and the limits.
func parseHeader(b []byte) (*Header, error) {
	if len(b) < fixedHeaderSize {
		return nil, &FormatError{Field: "header", Reason: fmt.Sprintf("%d bytes, want at least %d", len(b), fixedHeaderSize)}
	}
	h := &Header{
		Kind:     Kind(b[0]),
		Priority: b[1],
		HopLimit: b[2],
	}
	h.Dest.Type = DestType(b[3])
	copy(h.Source[:], b[4:36])
	copy(h.Dest.ID[:], b[36:68])
	h.Seq = binary.BigEndian.Uint64(b[68:76])
	created := int64(binary.BigEndian.Uint64(b[76:84]))
	expires := int64(binary.BigEndian.Uint64(b[84:92]))
	h.ContentSize = binary.BigEndian.Uint64(b[92:100])
	h.PayloadSize = binary.BigEndian.Uint64(b[100:108])
	copy(h.PayloadHash[:], b[108:140])
	copy(h.Nonce[:], b[140:156])

	switch h.Kind {
	case KindMessages, KindArchive, KindAnnounce, KindKeys:
	default:
		return nil, &FormatError{Field: "kind", Reason: fmt.Sprintf("unknown kind 0x%02x", b[0])}
	}
	switch h.Dest.Type {
	case DestNode, DestGroup:
	case DestEveryone:
		if h.Dest.ID != [32]byte{} {
			return nil, &FormatError{Field: "destination", Reason: "everyone with a non-zero id"}
		}
	default:
		return nil, &FormatError{Field: "destination", Reason: fmt.Sprintf("unknown type 0x%02x", b[3])}
	}
	if created < 0 || expires < 0 {
		return nil, &FormatError{Field: "time", Reason: "negative timestamp"}
	}
	if expires != 0 && expires < created {
		return nil, &FormatError{Field: "expires", Reason: "expires before it was created"}
	}
	h.Created = timeOrZero(created)
	h.Expires = timeOrZero(expires)

	rest := b[fixedHeaderSize:]
	for len(rest) > 0 {
		typ := rest[0]
		n, k := binary.Uvarint(rest[1:])
		if k <= 0 || n > uint64(len(rest)-1-k) {
			return nil, &FormatError{Field: "extension", Reason: "truncated"}
		}
		if typ >= 0x80 {
			return nil, &FormatError{Field: "extension", Reason: fmt.Sprintf("unknown critical extension 0x%02x", typ)}
		}
		v := rest[1+k : 1+k+int(n)]
		h.Extensions = append(h.Extensions, Extension{Type: typ, Value: append([]byte(nil), v...)})
		rest = rest[1+k+int(n):]
	}
	return h, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
