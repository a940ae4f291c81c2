package usb_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
	"ferry/usb"
)

// inventoryMagic is the documented start of a version 1 inventory.
const inventoryMagic = "FERRYINV\x00\x01"

// fuzzKey signs the bodies FuzzParseInventory makes up, so that the
// fuzzer reaches past the signature check.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// realInventory returns the inventory a real node leaves on a stick after
// syncing: it holds a bundle it made and takes bundles for itself and a
// peer.
func realInventory(f *testing.F) []byte {
	f.Helper()
	dir := f.TempDir()
	var ns []*node.Node
	for _, name := range []string{"north", "river"} {
		n, err := node.Init(filepath.Join(dir, name), name, node.Options{})
		if err != nil {
			f.Fatal(err)
		}
		defer n.Close()
		if err := n.AddUser(f.Context(), "anna"); err != nil {
			f.Fatal(err)
		}
		ns = append(ns, n)
	}
	card, err := ns[1].Card(nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ns[0].AddPeer(f.Context(), card, ""); err != nil {
		f.Fatal(err)
	}
	if _, err := ns[0].Send(f.Context(), "anna", node.Address{User: "anna", Node: "river"}, "hello"); err != nil {
		f.Fatal(err)
	}
	stick := filepath.Join(dir, "stick")
	if err := os.Mkdir(stick, 0o755); err != nil {
		f.Fatal(err)
	}
	if _, err := usb.Sync(f.Context(), ns[0], stick, usb.Options{}); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(stick, "FERRY", "inventory", ns[0].ID().String()+".inv"))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzParseInventory feeds arbitrary bytes to ParseInventory, both as they
// are and re-signed by a known key (an inventory's signature covers
// everything else, so a fuzzer alone would almost never get past it). It
// must never panic, and what it accepts must be consistent: bounded sizes,
// Holds true exactly for the listed bundles, and the same encoding when
// marshalled again.
func FuzzParseInventory(f *testing.F) {
	f.Add(realInventory(f))
	var self bundle.NodeID
	copy(self[:], fuzzKey.Public().(ed25519.PublicKey))
	inv := &usb.Inventory{Node: self, Name: "hill", At: time.Unix(1700000000, 0), Wants: []bundle.NodeID{self, {1}, {2}}}
	inv.SetHolds([]bundle.ID{{1}, {2, 3}, {0xff}})
	b, err := inv.Marshal(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(inventoryMagic))
	f.Add([]byte{})
	// Counts not minimally encoded (0 as 80 00): docs/bundle.md refuses
	// such varints everywhere in the format, since one value must have
	// one encoding.
	for _, counts := range [][]byte{{0x80, 0x00, 0x00}, {0x00, 0x80, 0x00}} {
		body := append([]byte(inventoryMagic), self[:]...)
		body = binary.BigEndian.AppendUint64(body, 1700000000)
		body = append(append(body, 0), counts...)
		f.Add(append(body, ed25519.Sign(fuzzKey, body)...))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		if inv, err := usb.ParseInventory(b); err == nil {
			checkInventory(t, b, inv)
		}
		// The same bytes with the fuzz key's ID and signature.
		if len(b) < len(inventoryMagic)+32+ed25519.SignatureSize {
			return
		}
		body := bytes.Clone(b[:len(b)-ed25519.SignatureSize])
		copy(body[len(inventoryMagic):], self[:])
		signed := append(body, ed25519.Sign(fuzzKey, body)...)
		inv, err := usb.ParseInventory(signed)
		if err != nil {
			return
		}
		if inv.Node != self {
			t.Fatalf("parsed node %s, signed as %s", inv.Node, self)
		}
		checkInventory(t, signed, inv)
		// Marshalled again with the same key, the inventory must encode
		// to the same bytes: one inventory, one encoding.
		again := &usb.Inventory{Node: inv.Node, Name: inv.Name, At: inv.At, Wants: inv.Wants}
		again.SetHolds(listedHolds(signed, inv))
		out, err := again.Marshal(fuzzKey)
		if err != nil {
			t.Fatalf("marshal of a parsed inventory: %v", err)
		}
		if !bytes.Equal(out, signed) {
			t.Fatalf("parse → marshal changed the bytes:\n in %x\nout %x", signed, out)
		}
	})
}

// listedHolds returns the short IDs an accepted inventory lists, read from
// its documented place: the 16-byte entries just before the signature,
// each padded to a full bundle ID.
func listedHolds(b []byte, inv *usb.Inventory) []bundle.ID {
	const short = 16
	end := len(b) - ed25519.SignatureSize
	start := end - inv.Len()*short
	ids := make([]bundle.ID, inv.Len())
	for i := range ids {
		copy(ids[i][:], b[start+i*short:start+(i+1)*short])
	}
	return ids
}

// checkInventory checks what holds for every inventory ParseInventory
// accepts.
func checkInventory(t *testing.T, b []byte, inv *usb.Inventory) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(inventoryMagic)) {
		t.Fatalf("accepted an inventory without the magic: %x", b)
	}
	fixed := len(inventoryMagic) + 32 + 8 + 1 + len(inv.Name) + ed25519.SignatureSize
	if len(inv.Name) > 255 {
		t.Fatalf("name of %d bytes", len(inv.Name))
	}
	if got := fixed + 1 + len(inv.Wants)*32 + 1 + inv.Len()*16; got > len(b) {
		t.Fatalf("%d wants and %d holds cannot fit in %d bytes", len(inv.Wants), inv.Len(), len(b))
	}
	if inv.At.Unix() != int64(binary.BigEndian.Uint64(b[len(inventoryMagic)+32:])) {
		t.Fatalf("time %v is not the one encoded", inv.At)
	}
	ids := listedHolds(b, inv)
	for i, id := range ids {
		if !inv.Holds(id) {
			t.Fatalf("listed bundle %x not held", id[:16])
		}
		if i > 0 && bytes.Compare(ids[i-1][:16], id[:16]) >= 0 {
			t.Fatalf("holds not strictly ascending at %d", i)
		}
		// Holds compares the first 16 bytes only.
		other := id
		other[31] ^= 0xff
		if !inv.Holds(other) {
			t.Fatalf("Holds looks past the short ID")
		}
	}
	// IDs between and beside the listed ones are not held.
	for _, id := range ids {
		for _, d := range []byte{1, 0x80} {
			probe := id
			probe[15] ^= d
			listed := false
			for _, x := range ids {
				listed = listed || bytes.Equal(x[:16], probe[:16])
			}
			if inv.Holds(probe) != listed {
				t.Fatalf("Holds(%x) = %v, but it is listed: %v", probe[:16], inv.Holds(probe), listed)
			}
		}
	}
	for _, w := range inv.Wants {
		if !inv.WantsNode(w) {
			t.Fatalf("WantsNode(%s) false for a listed node", w)
		}
	}
}
