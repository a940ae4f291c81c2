package node_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

func TestVectorOf(t *testing.T) {
	o := bundle.NodeID{1}
	v := node.VectorOf(map[bundle.NodeID][]uint64{o: {7, 1, 2, 4, 4, 0, 8}})
	if len(v) != 1 {
		t.Fatalf("%d origins", len(v))
	}
	ov := v[0]
	if ov.Max != 8 || !slices.Equal(ov.Holes, []node.Range{{Lo: 3, Hi: 3}, {Lo: 5, Hi: 6}}) || ov.Count() != 5 {
		t.Fatalf("vector %+v, count %d", ov, ov.Count())
	}
	for seq, want := range map[uint64]bool{0: false, 1: true, 3: false, 4: true, 5: false, 6: false, 8: true, 9: false} {
		if ov.Has(seq) != want {
			t.Errorf("Has(%d) = %v", seq, !want)
		}
	}
	if v.Origin(o) == nil || v.Origin(bundle.NodeID{2}) != nil {
		t.Error("Origin lookup")
	}
}

// TestVectorDigestGolden pins the digest: nodes of every version must
// compute the same one for the same inventory.
func TestVectorDigestGolden(t *testing.T) {
	v := node.VectorOf(map[bundle.NodeID][]uint64{{1}: {1, 2, 4}, {2}: {1}})
	got := v.Digest()
	want := "17ea8e68875f0c3d42f5117c76733b1a" // docs/sync.md, recomputed there in Python
	if h := bytesHex(got[:]); h != want {
		t.Errorf("digest %s, want %s", h, want)
	}
	if node.VectorOf(nil).Digest() == got {
		t.Error("an empty vector has the same digest")
	}
}

func bytesHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestVectorCountsSeenAndKnownBundles(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "river"}, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := north.Held(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := north.Vector(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o := v.Origin(north.ID()); o == nil || o.Max != 1 || len(o.Holes) != 0 {
		t.Fatalf("north's own bundles: %+v", v)
	}

	stranger := bundle.NodeID(sha256.Sum256([]byte("stranger")))
	err = river.Know(ctx, []node.Known{
		{Source: stranger, Seq: 1, Reason: node.KnownDelivered},
		{Source: stranger, Seq: 2, Reason: node.KnownExpired},
		{Source: stranger, Seq: 4, Reason: node.KnownDeclined, Dest: bundle.ToNode(north.ID())},
		// Declined for river itself: not recorded, river wants it still.
		{Source: stranger, Seq: 5, Reason: node.KnownDeclined, Dest: bundle.ToNode(river.ID())},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, _ = river.Vector(ctx)
	if o := v.Origin(stranger); o == nil || o.Max != 4 || !slices.Equal(o.Holes, []node.Range{{Lo: 3, Hi: 3}}) {
		t.Fatalf("river's vector of the stranger: %+v", o)
	}
	es, err := river.Entries(ctx, stranger, 1, 10)
	if err != nil || len(es) != 3 || es[2].State != node.StateKnown || es[2].Reason != node.KnownDeclined {
		t.Fatalf("entries: %+v, %v", es, err)
	}
}

type cardInfo struct {
	id   bundle.NodeID
	text string
}

func strangerCard(t *testing.T, c *clock) cardInfo {
	n := newNode(t, "far", c)
	text, err := n.Card(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cardInfo{n.ID(), text}
}

func TestKnownDeclinedCountsWhileDeclined(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	river := newNode(t, "river", c)
	far := strangerCard(t, c)
	ctx := t.Context()
	if err := river.Know(ctx, []node.Known{{Source: far.id, Seq: 1, Reason: node.KnownDeclined, Dest: bundle.Destination{Type: bundle.DestEveryone}}}); err != nil {
		t.Fatal(err)
	}
	v, _ := river.Vector(ctx)
	if v.Origin(far.id) == nil {
		t.Fatal("a declined bundle of an untrusted signer does not count")
	}
	if _, err := river.AddPeer(ctx, far.text, ""); err != nil {
		t.Fatal(err)
	}
	v, _ = river.Vector(ctx)
	if v.Origin(far.id) != nil {
		t.Fatal("a declined bundle still counts after its signer became trusted")
	}
}

func TestPartialResumesAndIngests(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	body := string(bytes.Repeat([]byte("the road to the clinic is open again. "), 2000))
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "river"}, body[:60000]); err != nil {
		t.Fatal(err)
	}
	held, err := north.Held(ctx)
	if err != nil || len(held) != 1 {
		t.Fatalf("held %d bundles (%v)", len(held), err)
	}
	f, err := north.OpenBundle(held[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(f)
	f.Close()
	rd, err := bundle.NewReader(bytes.NewReader(raw), bundle.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	prefix := int(rd.PayloadOffset())

	p, err := river.BeginPartial(ctx, raw[:prefix], int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	half := len(raw) / 2
	if _, err := p.Write(raw[prefix:half]); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := river.PartialOf(ctx, north.ID(), 1)
	if err != nil || info == nil || info.Have != int64(half) || info.ID != held[0].ID {
		t.Fatalf("partial %+v (%v)", info, err)
	}
	// The spool's sweep keeps the partial file, however old.
	old := time.Now().Add(-48 * time.Hour)
	path := filepath.Join(river.Dir(), "spool", "tmp", info.ID.String()+".partial")
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	river.Close()
	river, err = node.Open(river.Dir(), node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer river.Close()

	p, err = river.ResumePartial(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(append(raw[half:], 0)); err == nil {
		t.Fatal("a byte past the bundle's end was taken")
	}
	if _, err := p.Write(raw[half:]); err != nil {
		t.Fatal(err)
	}
	res, err := p.Ingest(ctx)
	if err != nil || res.Status != node.StatusApplied || res.Messages != 1 {
		t.Fatalf("ingest: %+v, %v", res, err)
	}
	if info, _ := river.PartialOf(ctx, north.ID(), 1); info != nil {
		t.Errorf("partial left after ingest: %+v", info)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("partial file left after ingest: %v", err)
	}
}

func TestBeginPartialRefusesForgedPrefix(t *testing.T) {
	c := &clock{t: time.Now()}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "river"}, "x"); err != nil {
		t.Fatal(err)
	}
	held, _ := north.Held(ctx)
	f, _ := north.OpenBundle(held[0].ID)
	raw, _ := io.ReadAll(f)
	f.Close()
	rd, _ := bundle.NewReader(bytes.NewReader(raw), bundle.Limits{})
	prefix := append([]byte(nil), raw[:rd.PayloadOffset()]...)
	prefix[20] ^= 1
	if _, err := river.BeginPartial(ctx, prefix, int64(len(raw))); err == nil {
		t.Error("a prefix with a broken signature was accepted")
	}
	if _, err := river.BeginPartial(ctx, raw[:rd.PayloadOffset()], int64(len(raw))+1); err == nil {
		t.Error("a size other than the header's was accepted")
	}
}
