package lora

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"

	"ferry/carriers"
)

func unit(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }

// TestCompactRoundTrip: chunks cut anywhere in the session stream decode
// to the same bytes; a node key from the peer's hello, repeated in a
// later frame, costs a few bytes; random data is sent as it is, with a
// prefix of at most 3 bytes.
func TestCompactRoundTrip(t *testing.T) {
	var a, b codec
	keyA, keyB := make([]byte, 32), make([]byte, 32)
	rand.Read(keyA)
	rand.Read(keyB)
	helloA := unit(append([]byte{0x01, 0x01}, append(keyA, make([]byte, 16)...)...))
	helloB := unit(append([]byte{0x01, 0x01}, append(keyB, make([]byte, 16)...)...))
	// Each end's hello crosses (the first cut in two chunks).
	if got, err := b.decode(a.encode(helloA[:10])); err != nil || !bytes.Equal(got, helloA[:10]) {
		t.Fatalf("first half: %x, %v", got, err)
	}
	if got, err := b.decode(a.encode(helloA[10:])); err != nil || !bytes.Equal(got, helloA[10:]) {
		t.Fatalf("second half: %x, %v", got, err)
	}
	if got, err := a.decode(b.encode(helloB)); err != nil || !bytes.Equal(got, helloB) {
		t.Fatalf("hello B: %x, %v", got, err)
	}
	// An offer from a naming both keys.
	offer := unit(append(append([]byte{0x07, 0x01, 0x01}, keyA...), keyB...))
	enc := a.encode(offer)
	if len(enc) > len(offer)/2 {
		t.Errorf("an offer of two known keys took %d bytes for %d", len(enc), len(offer))
	}
	if enc[0]&chunkPeerFirst == 0 {
		t.Errorf("the offer's chunk does not use the peer's hello")
	}
	// Half of it arrives, then the rest.
	got1, err := b.decode(enc[:len(enc)/2])
	if err != nil || len(got1) != 0 {
		t.Fatalf("half a chunk: %x, %v", got1, err)
	}
	got2, err := b.decode(enc[len(enc)/2:])
	if err != nil || !bytes.Equal(got2, offer) {
		t.Fatalf("offer: %x, %v", got2, err)
	}
	// Encrypted bundle data does not shrink: it goes as it is.
	data := make([]byte, chunkRaw)
	rand.Read(data)
	enc = a.encode(data)
	if len(enc) > len(data)+3 || enc[0]&chunkDeflate != 0 {
		t.Errorf("random data: %d bytes for %d, flags %d", len(enc), len(data), enc[0]&3)
	}
	if got, err := b.decode(enc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data: %v", err)
	}
	// A later chunk uses the history of what a sent.
	enc = a.encode(offer)
	if got, err := b.decode(enc); err != nil || !bytes.Equal(got, offer) || len(enc) > 20 {
		t.Fatalf("repeat: %d bytes, %v", len(enc), err)
	}
	if a.Raw != int64(len(helloA)+2*len(offer)+len(data)) || a.Encoded >= a.Raw {
		t.Errorf("counted %d raw, %d encoded", a.Raw, a.Encoded)
	}
}

// TestCompactRefusesGarbage: a bad chunk is a protocol error.
func TestCompactRefusesGarbage(t *testing.T) {
	for _, b := range [][]byte{
		{0xff, 0xff, 0xff, 0x7f}, // a chunk far over the bound
		{0x0d, 0xff, 0xff, 0xff}, // 3 bytes of "DEFLATE" that are not
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // uvarint overflow
	} {
		var c codec
		if _, err := c.decode(b); !errors.Is(err, carriers.ErrProtocol) {
			t.Errorf("%x: %v, want a protocol error", b, err)
		}
	}
}

// FuzzCompact: arbitrary bytes never panic nor decode to more than the
// chunk bound per chunk; what one codec encodes, another decodes.
func FuzzCompact(f *testing.F) {
	var c codec
	f.Add(c.encode(unit([]byte("hello hello hello hello"))), []byte("frame"))
	f.Add([]byte{0x0d, 1, 2, 3}, []byte{})
	f.Fuzz(func(t *testing.T, in, raw []byte) {
		var d codec
		out, err := d.decode(in)
		if err == nil && len(out) > len(in)*1100+chunkRaw {
			t.Fatalf("%d bytes decoded from %d", len(out), len(in))
		}
		if len(raw) == 0 || len(raw) > chunkRaw {
			return
		}
		var a, b codec
		enc := a.encode(unit(raw))
		got, err := b.decode(enc)
		if err != nil || !bytes.Equal(got, unit(raw)) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
