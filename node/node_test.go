package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newNode(t *testing.T, name string, c *clock) *node.Node {
	t.Helper()
	n, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.AddUser(t.Context(), "user"); err != nil {
		t.Fatal(err)
	}
	return n
}

func link(t *testing.T, a, b *node.Node) {
	t.Helper()
	for _, p := range [][2]*node.Node{{a, b}, {b, a}} {
		card, err := p[0].Card(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p[1].AddPeer(t.Context(), card, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// carry exports from a to b and imports every file, returning the results.
func carry(t *testing.T, from, to *node.Node) []node.IngestResult {
	t.Helper()
	dir := t.TempDir()
	if _, err := from.Export(t.Context(), to.ID(), dir); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
	var out []node.IngestResult
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := to.Ingest(t.Context(), fh)
		fh.Close()
		if err != nil {
			t.Fatalf("ingest %s: %v", f, err)
		}
		out = append(out, r)
	}
	return out
}

func state(t *testing.T, n *node.Node, user string) map[string]string {
	t.Helper()
	msgs, err := n.Inbox(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, x := range msgs {
		m[x.Body] = x.State
	}
	return m
}

func TestMessageDeliveredOnceAndReceiptReturns(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "river"}, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "river"}, "two"); err != nil {
		t.Fatal(err)
	}
	if got := state(t, north, "user"); got["one"] != node.StateQueued {
		t.Fatalf("before export: %v", got)
	}
	res := carry(t, north, river)
	if len(res) != 1 || res[0].Status != node.StatusApplied || res[0].Messages != 2 {
		t.Fatalf("first carry: %+v (want one bundle with both messages)", res)
	}
	if got := state(t, north, "user"); got["one"] != node.StateCarried {
		t.Fatalf("after export: %v", got)
	}
	// The same bundle again is a duplicate.
	if res := carry(t, north, river); len(res) != 1 || res[0].Status != node.StatusDuplicate {
		t.Fatalf("second carry: %+v", res)
	}
	if got := state(t, river, "user"); len(got) != 2 || got["one"] != node.StateReceived {
		t.Fatalf("river inbox: %v", got)
	}
	carry(t, river, north)
	if got := state(t, north, "user"); got["one"] != node.StateDelivered || got["two"] != node.StateDelivered {
		t.Fatalf("after receipt: %v", got)
	}
	// Delivered bundles are not offered again.
	out, err := north.Outgoing(ctx, river.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Fatalf("north still offers %d bundles after the receipt", len(out))
	}
}

func TestExpiredBundlesAreRefusedAndDropped(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	if _, err := north.Send(t.Context(), "user", node.Address{User: "user", Node: "river"}, "late"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := north.Export(t.Context(), river.ID(), dir); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(node.DefaultMessageTTL + time.Second)
	files, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
	f, _ := os.Open(files[0])
	defer f.Close()
	_, err := river.Ingest(t.Context(), f)
	if !errors.Is(err, node.ErrExpired) {
		t.Fatalf("got %v, want ErrExpired", err)
	}
	out, err := north.Outgoing(t.Context(), river.ID())
	if err != nil || len(out) != 0 {
		t.Fatalf("north still offers %d expired bundles (%v)", len(out), err)
	}
	if got := state(t, north, "user"); got["late"] != node.StateExpired {
		t.Fatalf("sender sees %v, want expired", got)
	}
}

func TestRelayCarriesForKnownNodesOnly(t *testing.T) {
	c := &clock{t: time.Now()}
	north, river, hill := newNode(t, "north", c), newNode(t, "river", c), newNode(t, "hill", c)
	link(t, north, river)
	link(t, river, hill)
	link(t, north, hill)
	if _, err := north.Send(t.Context(), "user", node.Address{User: "user", Node: "hill"}, "via river"); err != nil {
		t.Fatal(err)
	}
	if res := carry(t, north, river); len(res) != 1 || res[0].Status != node.StatusStored {
		t.Fatalf("river should store north's bundle for hill: %+v", res)
	}
	if res := carry(t, river, hill); len(res) != 1 || res[0].Status != node.StatusApplied {
		t.Fatalf("hill should apply the relayed bundle: %+v", res)
	}
	if got := state(t, hill, "user"); got["via river"] != node.StateReceived {
		t.Fatalf("hill inbox: %v", got)
	}
	// A node that knows neither end cannot carry.
	lone := newNode(t, "lone", c)
	link(t, north, lone)
	if _, err := north.Send(t.Context(), "user", node.Address{User: "user", Node: "hill"}, "again"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := north.Export(t.Context(), lone.ID(), dir); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
	for _, f := range files {
		fh, _ := os.Open(f)
		_, err := lone.Ingest(context.Background(), fh)
		fh.Close()
		if !errors.Is(err, node.ErrCannotCarry) {
			t.Errorf("lone took a bundle for hill: %v", err)
		}
	}
}

// TestTwoProcessesTakeDistinctBundleNumbers: two handles on one data
// directory (serve and a command) sealing at once never give two bundles
// the same number, which would hide one of them from every peer's
// inventory.
func TestTwoProcessesTakeDistinctBundleNumbers(t *testing.T) {
	c := &clock{t: time.Now()}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	other, err := node.Open(north.Dir(), node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const each = 20
	var mu sync.Mutex
	seen := map[uint64]bundle.ID{}
	var wg sync.WaitGroup
	for _, n := range []*node.Node{north, other} {
		wg.Go(func() {
			for range each {
				id, _, err := n.SealRecords(t.Context(), river.ID(), bundle.KindArchive, node.PriorityArchive, 0, func(w *bundle.Writer) error {
					return w.WriteRecord(bundle.RecordFile, make([]byte, 2000))
				})
				if err != nil {
					t.Error(err)
					return
				}
				f, err := n.OpenBundle(id)
				if err != nil {
					t.Error(err)
					return
				}
				rd, err := bundle.NewReader(f, bundle.Limits{})
				f.Close()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, ok := seen[rd.Header().Seq]; ok {
					t.Errorf("bundles %s and %s both have number %d", prev, id, rd.Header().Seq)
				}
				seen[rd.Header().Seq] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 2*each {
		t.Errorf("%d distinct numbers for %d bundles", len(seen), 2*each)
	}
}
