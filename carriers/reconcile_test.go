package carriers

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"ferry/bundle"
	"ferry/node"
)

// store is an inventory for reconciliation tests: per origin, the
// numbers held.
type store map[bundle.NodeID]map[uint64]bool

func (s store) vector() node.Vector {
	m := map[bundle.NodeID][]uint64{}
	for o, seqs := range s {
		for q := range seqs {
			m[o] = append(m[o], q)
		}
	}
	return node.VectorOf(m)
}

func origin(i int) bundle.NodeID {
	return bundle.NodeID(sha256.Sum256(fmt.Appendf(nil, "origin %d", i)))
}

// scenario builds two stores of origins×perOrigin bundles: each lacks
// diff/2 bundles the other has, scattered, and both lack common more.
func scenario(seed uint64, origins, perOrigin, diff, common int) (store, store) {
	rng := rand.New(rand.NewPCG(seed, 1))
	a, b := store{}, store{}
	for i := range origins {
		o := origin(i)
		a[o], b[o] = map[uint64]bool{}, map[uint64]bool{}
		for q := 1; q <= perOrigin; q++ {
			a[o][uint64(q)], b[o][uint64(q)] = true, true
		}
	}
	drop := func(n int, from ...store) {
		for n > 0 {
			o := origin(rng.IntN(origins))
			q := uint64(1 + rng.IntN(perOrigin-1)) // keep each max
			if !a[o][q] || !b[o][q] {
				continue
			}
			for _, s := range from {
				delete(s[o], q)
			}
			n--
		}
	}
	drop(common, a, b)
	drop(diff/2, a)
	drop(diff-diff/2, b)
	return a, b
}

// exchangeResult is what a reconciliation between two stores cost.
type exchangeResult struct {
	bytes      int    // both ways, frame type bytes included, digests not
	roundTrips int    // after the hello
	mode       string // as the first store saw the second
	frames     int    // frames of mtu bytes, both ways
}

// exchange runs the reconciliation between two stores in memory, both
// sides at once, as two sessions would over a link of the given MTU, and
// checks that each learns exactly what the other has of what it holds.
func exchange(t testing.TB, a, b store, mtu int) exchangeResult {
	var na, nb [16]byte
	na[0], nb[0] = 1, 2
	ka, kb := newKeying(na, nb), newKeying(nb, na)
	va, vb := a.vector(), b.vector()
	var res exchangeResult
	if va.Digest() == vb.Digest() {
		return exchangeResult{mode: "in sync"}
	}
	ra := newReconciler(newLocal(ka, va), map[seqRef]bool{})
	rb := newReconciler(newLocal(kb, vb), map[seqRef]bool{})
	count := func(t FrameType, body []byte) *message {
		fs := frames(t, body, mtu)
		res.frames += len(fs)
		for _, f := range fs {
			res.bytes += len(f)
		}
		return &message{t: t, body: body}
	}
	toB := []*message{count(FrameVector, ra.start())}
	toA := []*message{count(FrameVector, rb.start())}
	for len(toA)+len(toB) > 0 {
		var nextA, nextB []*message
		for _, m := range toB {
			out, err := rb.handle(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out {
				nextA = append(nextA, count(o.t, o.body))
			}
		}
		for _, m := range toA {
			out, err := ra.handle(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range out {
				nextB = append(nextB, count(o.t, o.body))
			}
		}
		toA, toB = nextA, nextB
	}
	if ra.peer == nil || rb.peer == nil {
		t.Fatal("reconciliation did not finish")
	}
	for _, c := range []struct {
		r     *reconciler
		mine  store
		other store
	}{{ra, a, b}, {rb, b, a}} {
		for o, seqs := range c.mine {
			for q := range seqs {
				if got := c.r.peer.has(o, q); got != c.other[o][q] {
					t.Fatalf("peer has %s:%d = %v, truly %v", o.Short(), q, got, c.other[o][q])
				}
			}
		}
	}
	res.roundTrips = 1 + max(ra.asked, rb.asked)
	res.mode = ra.mode
	return res
}

func TestReconcileGoals(t *testing.T) {
	for _, tc := range []struct {
		name              string
		origins, per      int
		diff, common, mtu int
		maxBytes, maxRTs  int
		maxFrames         int
	}{
		// 100 scattered differences between stores of 100,000: ≤ 3 KB,
		// ≤ 2 round trips.
		{"100kDiff100", 100, 1000, 100, 0, 64 << 10, 3000, 2, 0},
		// Any difference: ≤ 3 round trips.
		{"100kDiff10000", 100, 1000, 10000, 0, 64 << 10, 1 << 20, 3, 0},
		{"100kDiff100Common20000", 100, 1000, 100, 20000, 64 << 10, 1 << 20, 3, 0},
		{"100kDiff1000Common20000", 100, 1000, 1000, 20000, 64 << 10, 1 << 20, 3, 0},
		{"100kDiff10000Common20000", 100, 1000, 10000, 20000, 64 << 10, 1 << 20, 3, 0},
		// On a LoRa link, a difference of 10 costs at most 2 frames.
		{"LoRaDiff10", 4, 250, 10, 0, 251, 502, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := scenario(7, tc.origins, tc.per, tc.diff, tc.common)
			r := exchange(t, a, b, tc.mtu)
			t.Logf("%s: %d bytes, %d round trips, %d frames, %s", tc.name, r.bytes, r.roundTrips, r.frames, r.mode)
			if r.bytes > tc.maxBytes || r.roundTrips > tc.maxRTs || tc.maxFrames > 0 && r.frames > tc.maxFrames {
				t.Errorf("%d bytes in %d round trips and %d frames: want at most %d, %d, %d", r.bytes, r.roundTrips, r.frames, tc.maxBytes, tc.maxRTs, tc.maxFrames)
			}
		})
	}
}

// TestReconcileFallsBack drives the sketch into its fallbacks: more
// symbols, then the holes explicitly.
func TestReconcileFallsBack(t *testing.T) {
	for _, diff := range []int{50, 300, 3000} {
		a, b := scenario(uint64(diff), 50, 2000, diff, 30000)
		r := exchange(t, a, b, 64<<10)
		t.Logf("diff %d with 30,000 common holes: %d bytes, %d round trips, %s", diff, r.bytes, r.roundTrips, r.mode)
		if r.roundTrips > 3 {
			t.Errorf("%d round trips", r.roundTrips)
		}
	}
}

// BenchmarkReconcile reports the bytes and round trips of reconciling two
// stores of 100,000 bundles (100 origins × 1,000) that differ by d
// scattered bundles, with and without 20,000 holes common to both.
//
//	go test ./carriers -run '^$' -bench Reconcile
func BenchmarkReconcile(b *testing.B) {
	for _, common := range []int{0, 20000} {
		for _, d := range []int{0, 10, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("common=%d/d=%d", common, d), func(b *testing.B) {
				x, y := scenario(uint64(d+1), 100, 1000, d, common)
				var r exchangeResult
				for b.Loop() {
					r = exchange(b, x, y, 64<<10)
				}
				b.ReportMetric(float64(r.bytes+32), "bytes")
				b.ReportMetric(float64(r.roundTrips), "round-trips")
			})
		}
	}
}
