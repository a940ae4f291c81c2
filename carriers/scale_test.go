package carriers_test

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

// fill makes n account for origins×per bundles, known as delivered,
// except the numbers skip lists.
func fill(t testing.TB, n *node.Node, origins, per int, skip map[[2]int]bool) {
	t.Helper()
	ks := make([]node.Known, 0, origins*per)
	for i := range origins {
		o := bundle.NodeID(sha256.Sum256(fmt.Appendf(nil, "origin %d", i)))
		for q := 1; q <= per; q++ {
			if !skip[[2]int{i, q}] {
				ks = append(ks, node.Known{Source: o, Seq: uint64(q), Reason: node.KnownDelivered})
			}
		}
	}
	if err := n.Know(t.Context(), ks); err != nil {
		t.Fatal(err)
	}
}

// TestSyncStoresOf100000 reconciles two real stores of 100,000 bundles
// that differ by 100 scattered ones, over a pipe: a few kilobytes, one
// round trip, and then they are in sync.
func TestSyncStoresOf100000(t *testing.T) {
	if testing.Short() {
		t.Skip("fills two stores of 100,000 bundles")
	}
	a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, a, b)
	rng := rand.New(rand.NewPCG(3, 4))
	skipA, skipB := map[[2]int]bool{}, map[[2]int]bool{}
	for len(skipA)+len(skipB) < 100 {
		k := [2]int{rng.IntN(100), 1 + rng.IntN(999)}
		if skipA[k] || skipB[k] {
			continue
		}
		if len(skipA) < 50 {
			skipA[k] = true
		} else {
			skipB[k] = true
		}
	}
	start := time.Now()
	fill(t, a, 100, 1000, skipA)
	fill(t, b, 100, 1000, skipB)
	t.Logf("filled two stores in %s", time.Since(start))
	start = time.Now()
	la, lb := carriers.Pipe(64 << 10)
	ra, rb := carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{})
	if ra.Err != nil || rb.Err != nil {
		t.Fatalf("sync: %v / %v", ra.Err, rb.Err)
	}
	rc := ra.Report.Reconcile
	t.Logf("session in %s: reconciliation %d+%d bytes, %d round trips (%s); learned %d/%d",
		time.Since(start), rc.Sent, rc.Received, rc.RoundTrips, rc.Mode, ra.Report.Known, rb.Report.Known)
	if total := rc.Sent + rc.Received; total > 3000 || rc.RoundTrips > 2 {
		t.Errorf("reconciliation took %d bytes and %d round trips, want ≤ 3,000 and ≤ 2", total, rc.RoundTrips)
	}
	if ra.Report.Known != 50 || rb.Report.Known != 50 {
		t.Errorf("learned %d and %d bundles, want 50 each", ra.Report.Known, rb.Report.Known)
	}
	la, lb = carriers.Pipe(64 << 10)
	ra, _ = carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{})
	if ra.Err != nil || !ra.Report.InSync {
		t.Errorf("second session: in sync %v, %v", ra.Report.InSync, ra.Err)
	}
}

// TestConcurrentSessionsShareNoTransfer: a node syncs with two peers at
// once, both holding the same bundle for it; it takes the bundle once.
func TestConcurrentSessionsShareNoTransfer(t *testing.T) {
	a, b, c := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river"), carriertest.NewNode(t, "lake")
	carriertest.Introduce(t, a, b, c)
	body := "for lake, twice carried " + strings.Repeat("x", 50<<10)
	carriertest.Send(t, a, c, body)
	la, lb := carriers.Pipe(64 << 10)
	if ra, rb := carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{}); ra.Err != nil || rb.Err != nil {
		t.Fatal(ra.Err, rb.Err)
	}
	// north and river both hold the bundle for lake now.
	done := make(chan carriertest.Result, 2)
	for _, from := range []*node.Node{a, b} {
		go func() {
			l1, l2 := carriers.Pipe(251)
			r1, r2 := carriertest.SyncPair(t, from, c, l1, l2, carriers.Options{}, carriers.Options{})
			if r1.Err != nil {
				t.Error(r1.Err)
			}
			done <- r2
		}()
	}
	applied := 0
	for range 2 {
		r := <-done
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		applied += r.Report.Applied
	}
	if applied != 1 {
		t.Errorf("lake applied the bundle %d times", applied)
	}
	if st := carriertest.States(t, c); st[body] != "received" {
		t.Errorf("lake: %v", st)
	}
}
