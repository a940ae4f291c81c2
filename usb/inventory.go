package usb

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"ferry/bundle"
)

// inventoryMagic opens every inventory of version 1.
const inventoryMagic = "FERRYINV\x00\x01"

// shortIDLen is how much of a bundle ID an inventory keeps: 16 bytes make
// a collision between two bundles of one network vanishingly unlikely
// and halve the size of a big inventory.
const shortIDLen = 16

// Inventory limits, checked before allocating.
const (
	maxInventoryHolds = 4 << 20
	maxInventoryWants = 1 << 16
	maxInventorySize  = 16 + 8 + 1 + 255 + 10 + maxInventoryWants*32 + 10 + maxInventoryHolds*shortIDLen + 64
)

// ErrInventorySignature means an inventory's signature does not verify.
var ErrInventorySignature = errors.New("usb: inventory signature does not verify")

// Inventory is a node's signed summary, left on a stick, of what it holds
// and what it wants, so that the next node the stick meets knows what to
// put on it and what to remove.
type Inventory struct {
	Node  bundle.NodeID   // who wrote it (and signed it)
	Name  string          // the node's name, for people reading the stick
	At    time.Time       // when the node last synced the stick
	Wants []bundle.NodeID // nodes it takes bundles for: itself and its peers
	holds [][shortIDLen]byte
}

// SetHolds records the bundles the node holds.
func (inv *Inventory) SetHolds(ids []bundle.ID) {
	inv.holds = make([][shortIDLen]byte, len(ids))
	for i, id := range ids {
		copy(inv.holds[i][:], id[:shortIDLen])
	}
	slices.SortFunc(inv.holds, func(a, b [shortIDLen]byte) int { return bytes.Compare(a[:], b[:]) })
	inv.holds = slices.Compact(inv.holds)
}

// Holds reports whether the node held the bundle when it wrote the inventory.
func (inv *Inventory) Holds(id bundle.ID) bool {
	var k [shortIDLen]byte
	copy(k[:], id[:shortIDLen])
	_, ok := slices.BinarySearchFunc(inv.holds, k, func(a, b [shortIDLen]byte) int { return bytes.Compare(a[:], b[:]) })
	return ok
}

// Len returns the number of bundles the inventory lists.
func (inv *Inventory) Len() int { return len(inv.holds) }

// WantsNode reports whether the node takes bundles for id.
func (inv *Inventory) WantsNode(id bundle.NodeID) bool { return slices.Contains(inv.Wants, id) }

// Marshal encodes and signs the inventory:
//
//	magic "FERRYINV" 0x00 0x01 | node id (32) | at (int64 BE, unix s) |
//	name (u8 len + bytes) | wants (uvarint n + n×32) | holds (uvarint n +
//	n×16, ascending) | ed25519 signature (64) over everything before it
func (inv *Inventory) Marshal(key ed25519.PrivateKey) ([]byte, error) {
	if len(inv.Name) > 255 {
		return nil, errors.New("usb: inventory: name too long")
	}
	if string(key.Public().(ed25519.PublicKey)) != string(inv.Node[:]) {
		return nil, errors.New("usb: inventory: key does not match the node")
	}
	b := make([]byte, 0, 64+len(inv.Wants)*32+len(inv.holds)*shortIDLen+64)
	b = append(b, inventoryMagic...)
	b = append(b, inv.Node[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(inv.At.Unix()))
	b = append(b, byte(len(inv.Name)))
	b = append(b, inv.Name...)
	b = binary.AppendUvarint(b, uint64(len(inv.Wants)))
	for _, w := range inv.Wants {
		b = append(b, w[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(inv.holds)))
	for _, h := range inv.holds {
		b = append(b, h[:]...)
	}
	return append(b, ed25519.Sign(key, b)...), nil
}

// ParseInventory decodes an inventory and verifies its signature against
// the node ID it names. Whether that node is trusted is the caller's call.
func ParseInventory(b []byte) (*Inventory, error) {
	if len(b) > maxInventorySize {
		return nil, fmt.Errorf("usb: inventory of %d bytes exceeds limit %d", len(b), maxInventorySize)
	}
	if !bytes.HasPrefix(b, []byte(inventoryMagic)) {
		return nil, errors.New("usb: not a ferry inventory")
	}
	if len(b) < len(inventoryMagic)+32+8+1+ed25519.SignatureSize {
		return nil, errors.New("usb: inventory truncated")
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	p := body[len(inventoryMagic):]
	inv := &Inventory{}
	copy(inv.Node[:], p[:32])
	inv.At = time.Unix(int64(binary.BigEndian.Uint64(p[32:40])), 0).UTC()
	nameLen := int(p[40])
	p = p[41:]
	if len(p) < nameLen {
		return nil, errors.New("usb: inventory truncated")
	}
	inv.Name, p = string(p[:nameLen]), p[nameLen:]
	nw, k := binary.Uvarint(p)
	if k <= 0 || k != uvarintLen(nw) || nw > maxInventoryWants || uint64(len(p)-k) < nw*32 {
		return nil, errors.New("usb: inventory: malformed wants")
	}
	p = p[k:]
	inv.Wants = make([]bundle.NodeID, nw)
	for i := range inv.Wants {
		copy(inv.Wants[i][:], p[:32])
		p = p[32:]
	}
	nh, k := binary.Uvarint(p)
	if k <= 0 || k != uvarintLen(nh) || nh > maxInventoryHolds || uint64(len(p)-k) != nh*shortIDLen {
		return nil, errors.New("usb: inventory: malformed holds")
	}
	p = p[k:]
	inv.holds = make([][shortIDLen]byte, nh)
	for i := range inv.holds {
		copy(inv.holds[i][:], p[:shortIDLen])
		p = p[shortIDLen:]
		if i > 0 && bytes.Compare(inv.holds[i-1][:], inv.holds[i][:]) >= 0 {
			return nil, errors.New("usb: inventory: holds not ascending")
		}
	}
	if !ed25519.Verify(inv.Node.PublicKey(), body, sig) {
		return nil, ErrInventorySignature
	}
	return inv, nil
}

// uvarintLen is the length of v's minimal encoding: as everywhere in the
// format, a count encoded with more bytes than it needs is refused, so
// that one inventory has one encoding.
func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }
