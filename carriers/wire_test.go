package carriers

import (
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// TestWireConstants pins every wire constant of the session protocol
// (docs/sync.md): changing one breaks every node in the field.
func TestWireConstants(t *testing.T) {
	frames := []FrameType{FrameHello, FrameAuth, FrameRefuse, FrameVector, FrameSymbols, FrameMore, FrameOffer,
		FrameWant, FrameData, FrameGot, FrameEnd, FramePing, FrameSkip, FrameBye, FrameRoutes}
	for i, f := range frames {
		if byte(f) != byte(i+1) {
			t.Errorf("%s = 0x%02x, want 0x%02x", f, byte(f), i+1)
		}
	}
	for name, got := range map[string][2]int{
		"continuation": {frameMore, 0x80},
		"explicit":     {vectorExplicit, 0x01}, "sketch": {vectorSketch, 0x02},
		"available": {offerAvailable, 0x01}, "delivered": {offerDelivered, 0x02}, "expired": {offerExpired, 0x03},
		"declined": {offerDeclined, 0x04}, "withheld": {offerWithheld, 0x05},
		"got applied": {gotApplied, 0x01}, "got stored": {gotStored, 0x02}, "got duplicate": {gotDuplicate, 0x03}, "got expired": {gotExpired, 0x04},
		"version": {ProtocolVersion, 1}, "short ID": {shortLen, 6}, "min run": {sketchMinRun, 4},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %#x, want %#x", name, got[0], got[1])
		}
	}
}

func golden(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if h := hex.EncodeToString(got); h != want {
		t.Errorf("%s:\n got %s\nwant %s", what, h, want)
	}
}

func TestHelloGolden(t *testing.T) {
	h := hello{version: 1, id: bundle.NodeID{0xaa, 31: 0xbb}, nonce: [16]byte{1, 15: 2}}
	golden(t, "hello", frames(FrameHello, h.marshal(), 251)[0],
		"0101aa000000000000000000000000000000000000000000000000000000000000bb01000000000000000000000000000002")
	m := &message{t: FrameHello, body: h.marshal()}
	if back, err := parseHello(m); err != nil || back != h {
		t.Errorf("hello round trip: %+v, %v", back, err)
	}
	m.body[0] = 2
	if _, err := parseHello(m); err == nil {
		t.Error("a hello of version 2 parsed")
	}
}

func TestVectorGolden(t *testing.T) {
	k := newKeying([16]byte{1}, [16]byte{2})
	o := bundle.NodeID{7}
	v := node.VectorOf(map[bundle.NodeID][]uint64{o: {1, 2, 3, 5, 9, 10}})
	l := newLocal(k, v)
	short := k.origin(o).short
	// mode explicit | 1 origin | short ID | max 10 | 2 holes: 4 (+0), 6 (+2)
	golden(t, "vector", l.vectorMessage(), "01"+"01"+hex.EncodeToString(short[:])+"0a"+"02"+"0400"+"0202")
	pv, err := parseVector(&message{t: FrameVector, body: l.vectorMessage()})
	if err != nil || len(pv.origins) != 1 || pv.origins[0].Max != 10 || !slices.Equal(pv.origins[0].Holes, []node.Range{{Lo: 4, Hi: 4}, {Lo: 6, Hi: 8}}) {
		t.Errorf("vector round trip: %+v, %v", pv, err)
	}
}

func testOffer() []offerItem {
	exp := time.Unix(1_900_000_000, 0).UTC()
	return []offerItem{
		{Entry: node.Entry{Source: bundle.NodeID{1}, Seq: 3, Kind: bundle.KindMessages, Priority: 1, Dest: bundle.ToNode(bundle.NodeID{2}), Expires: exp, Size: 700}, status: offerAvailable},
		{Entry: node.Entry{Source: bundle.NodeID{1}, Seq: 4, Dest: bundle.Destination{Type: bundle.DestEveryone}}, status: offerDelivered},
	}
}

func TestOfferRoundTrip(t *testing.T) {
	items := testOffer()
	b := encodeOffer(2, items)
	round, back, err := parseOffer(&message{t: FrameOffer, body: b})
	if err != nil || round != 2 || len(back) != 2 {
		t.Fatalf("offer: round %d, %d items, %v", round, len(back), err)
	}
	for i := range items {
		a, b := items[i], back[i]
		if a.Source != b.Source || a.Seq != b.Seq || a.status != b.status || a.Dest != b.Dest || !a.Expires.Equal(b.Expires) || a.Size != b.Size || a.Kind != b.Kind || a.Priority != b.Priority {
			t.Errorf("item %d: %+v, want %+v", i, b, a)
		}
	}
	ws := []want{{index: 0}, {index: 1, offset: 300, id: [8]byte{9}}}
	_, wb, err := parseWant(&message{t: FrameWant, body: encodeWant(2, ws)}, 2)
	if err != nil || !slices.Equal(wb, ws) {
		t.Errorf("want round trip: %+v, %v", wb, err)
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add(encodeOffer(1, testOffer()))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		round, items, err := parseOffer(&message{t: FrameOffer, body: b})
		if err != nil {
			return
		}
		again := encodeOffer(round, items)
		_, items2, err := parseOffer(&message{t: FrameOffer, body: again})
		if err != nil || len(items2) != len(items) {
			t.Fatalf("re-encoded offer: %d items, %v", len(items2), err)
		}
	})
}

func FuzzParseVector(f *testing.F) {
	k := newKeying([16]byte{1}, [16]byte{2})
	f.Add(newLocal(k, node.VectorOf(map[bundle.NodeID][]uint64{{7}: {1, 2, 5, 9}})).vectorMessage())
	f.Add([]byte{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pv, err := parseVector(&message{t: FrameVector, body: b})
		if err != nil {
			return
		}
		for _, o := range pv.origins {
			for i, g := range o.Holes {
				if g.Lo == 0 || g.Hi < g.Lo || g.Hi >= o.Max || i > 0 && g.Lo <= o.Holes[i-1].Hi+1 {
					t.Fatalf("bad gaps accepted: %+v", o.Holes)
				}
			}
		}
	})
}

func FuzzAssembler(f *testing.F) {
	f.Add([]byte{0x84, 1, 2, 0x04, 3})
	f.Add([]byte{0x09, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a := assembler{limit: 64}
		for len(b) > 0 {
			n := min(int(b[0]%16)+1, len(b))
			m, err := a.add(b[:n])
			if err != nil {
				return
			}
			if m != nil && len(m.body) > 64 {
				t.Fatalf("message of %d bytes past the limit", len(m.body))
			}
			b = b[n:]
		}
	})
}
