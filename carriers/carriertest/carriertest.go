// Package carriertest is the conformance suite every ferry carrier runs:
// two (or three) real nodes in temporary directories sync over links the
// carrier makes, and the suite checks what they hold afterwards.
//
// A carrier's test calls [Run] with a [Harness] that connects two nodes:
//
//	func TestConformance(t *testing.T) {
//		carriertest.Run(t, carriertest.Harness{Connect: func(t testing.TB, a, b *node.Node) (carriers.Link, carriers.Link) {
//			return carriers.Pipe(64 << 10)
//		}})
//	}
//
// The suite covers: sync both ways with receipts back, carrying for a
// third node, a second sync that finds both sides in sync, resume after a
// cut at a random byte, the refusal of an untrusted peer, garbage on the
// wire, a stalled peer, and a peer that claims a bundle and sends other
// bytes. Faults are made by wrapping the carrier's own links, so that the
// suite needs nothing of a carrier but [carriers.Link].
//
// A slow medium (LoRa moves a few KB per minute) runs every case all the
// same: Harness.Bubble runs each case in a testing/synctest bubble, on a
// virtual clock, Harness.Shrink divides the data sizes and Harness.Slow
// multiplies the time bounds.
package carriertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/node"
)

// Harness makes links of one carrier.
type Harness struct {
	// Connect returns the two ends of a link between nodes a and b: la is
	// a's end, lb is b's. The suite closes both.
	Connect func(t testing.TB, a, b *node.Node) (la, lb carriers.Link)
	// Bubble, if set, runs the body of each case: a carrier whose links
	// run on the time package's clock passes testing/synctest.Test, so
	// that hours of airtime take no wall-clock time. The suite calls t.Run
	// only outside it.
	Bubble func(t *testing.T, body func(t *testing.T))
	// Shrink divides the sizes of the data the cases move (2 MB for a
	// resume, 1 MB for a stall, 200–600 KB for tampering and quota), for
	// a slow medium; 0 means 1. Every case runs, at its size ÷ Shrink.
	Shrink int64
	// Slow multiplies the suite's time bounds (each session's 60 s, the
	// idle times of the fault cases, the 10 s to notice a stall), for a
	// medium whose turns take seconds; 0 means 1.
	Slow time.Duration
}

func (h Harness) size(n int64) int64 { return n / max(h.Shrink, 1) }

func (h Harness) time(d time.Duration) time.Duration { return d * max(h.Slow, 1) }

func (h Harness) run(t *testing.T, body func(t *testing.T)) {
	if h.Bubble != nil {
		h.Bubble(t, body)
		return
	}
	body(t)
}

func (h Harness) opts(idle time.Duration) carriers.Options {
	if idle == 0 && h.Slow <= 1 {
		return carriers.Options{}
	}
	if idle == 0 {
		idle = carriers.DefaultIdle
	}
	return carriers.Options{Idle: h.time(idle)}
}

// Run runs the conformance suite against the carrier h connects with.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		f    func(*testing.T, Harness)
	}{
		{"SyncBothWays", testSyncBothWays},
		{"CarryForAThirdNode", testCarry},
		{"ArrivalDuringSession", testArrival},
		{"ResumeAfterCut", testResume},
		{"UntrustedPeerRefused", testUntrusted},
		{"GarbageRefused", nil},
		{"StalledPeer", nil},
		{"OtherBytesThanOffered", nil},
		{"Quota", testQuota},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			switch c.name {
			case "GarbageRefused":
				for _, tc := range garbageCases {
					t.Run(tc.name, func(t *testing.T) { h.run(t, func(t *testing.T) { testGarbage(t, h, tc.valid) }) })
				}
			case "StalledPeer":
				for _, tc := range stallCases {
					t.Run(tc.name, func(t *testing.T) { h.run(t, func(t *testing.T) { testStall(t, h, tc.after) }) })
				}
			case "OtherBytesThanOffered":
				for _, tc := range tamperCases {
					t.Run(tc.name, func(t *testing.T) { h.run(t, func(t *testing.T) { testTamper(t, h, tc.at) }) })
				}
			default:
				h.run(t, func(t *testing.T) { c.f(t, h) })
			}
		})
	}
}

// NewNode makes a node named name in a temporary directory, with one user
// of the same name.
func NewNode(t testing.TB, name string) *node.Node {
	t.Helper()
	n, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.AddUser(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return n
}

// Introduce makes each node trust the others.
func Introduce(t testing.TB, ns ...*node.Node) {
	t.Helper()
	for _, a := range ns {
		card, err := a.Card(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range ns {
			if a != b {
				if _, err := b.AddPeer(context.Background(), card, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// Send queues a message from the user of from to the user of to.
func Send(t testing.TB, from, to *node.Node, body string) {
	t.Helper()
	if _, err := from.Send(context.Background(), from.Name(), node.Address{User: to.Name(), Node: to.Name()}, body); err != nil {
		t.Fatal(err)
	}
}

// Result is what one end of a session returned.
type Result struct {
	Report *carriers.Report
	Err    error
}

// SyncPair runs a session between a and b over la and lb, both ends at
// once, and returns what each returned.
func SyncPair(t testing.TB, a, b *node.Node, la, lb carriers.Link, oa, ob carriers.Options) (Result, Result) {
	t.Helper()
	return syncWithin(60*time.Second, a, b, la, lb, oa, ob)
}

func (h Harness) syncPair(t testing.TB, a, b *node.Node, la, lb carriers.Link, oa, ob carriers.Options) (Result, Result) {
	t.Helper()
	return syncWithin(h.time(60*time.Second), a, b, la, lb, oa, ob)
}

func syncWithin(d time.Duration, a, b *node.Node, la, lb carriers.Link, oa, ob carriers.Options) (Result, Result) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ra, rb Result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ra.Report, ra.Err = carriers.Sync(ctx, a, la, oa) }()
	go func() { defer wg.Done(); rb.Report, rb.Err = carriers.Sync(ctx, b, lb, ob) }()
	wg.Wait()
	return ra, rb
}

// sync connects a and b with h and syncs them, failing the test on any
// error.
func sync2(t *testing.T, h Harness, a, b *node.Node) (*carriers.Report, *carriers.Report) {
	t.Helper()
	la, lb := h.Connect(t, a, b)
	ra, rb := h.syncPair(t, a, b, la, lb, h.opts(0), h.opts(0))
	if ra.Err != nil || rb.Err != nil {
		t.Fatalf("sync %s-%s: %v / %v", a.Name(), b.Name(), ra.Err, rb.Err)
	}
	return ra.Report, rb.Report
}

// States returns the state of each message the user of n sent or
// received, by body.
func States(t testing.TB, n *node.Node) map[string]string {
	t.Helper()
	msgs, err := n.Inbox(context.Background(), n.Name())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, x := range msgs {
		if _, dup := m[x.Body]; dup {
			t.Fatalf("%s: message %q shown twice", n.Name(), x.Body)
		}
		m[x.Body] = x.State
	}
	return m
}

func wantStates(t *testing.T, n *node.Node, want map[string]string) {
	t.Helper()
	got := States(t, n)
	for body, st := range want {
		if got[body] != st {
			t.Errorf("%s: message %q is %q, want %q", n.Name(), body, got[body], st)
		}
	}
}

func testSyncBothWays(t *testing.T, h Harness) {
	a, b := NewNode(t, "north"), NewNode(t, "river")
	Introduce(t, a, b)
	for i := range 3 {
		Send(t, a, b, fmt.Sprintf("north to river %d", i))
	}
	Send(t, b, a, "river to north")
	ra, rb := sync2(t, h, a, b)
	if ra.Received.Bundles == 0 || rb.Received.Bundles == 0 {
		t.Errorf("bundles received: north %d, river %d", ra.Received.Bundles, rb.Received.Bundles)
	}
	if rb.Messages != 3 || ra.Messages != 1 {
		t.Errorf("messages applied: river %d (want 3), north %d (want 1)", rb.Messages, ra.Messages)
	}
	// The receipts came back in the same session.
	wantStates(t, a, map[string]string{"north to river 0": "delivered", "north to river 2": "delivered", "river to north": "received"})
	wantStates(t, b, map[string]string{"north to river 1": "received", "river to north": "delivered"})

	// A second session finds both sides in sync and moves nothing.
	ra, rb = sync2(t, h, a, b)
	if !ra.InSync || !rb.InSync || ra.Received.Bytes+rb.Received.Bytes != 0 {
		t.Errorf("second sync: in sync %v/%v, %d bytes moved", ra.InSync, rb.InSync, ra.Received.Bytes+rb.Received.Bytes)
	}
	if ra.WireSent > 256 {
		t.Errorf("an in-sync session cost %d bytes one way, want at most 256", ra.WireSent)
	}
	if len(States(t, b)) != 4 {
		t.Errorf("river shows %d messages, want 4", len(States(t, b)))
	}
}

func testCarry(t *testing.T, h Harness) {
	a, b, c := NewNode(t, "north"), NewNode(t, "river"), NewNode(t, "lake")
	Introduce(t, a, b, c)
	Send(t, a, c, "north to lake")
	_, rb := sync2(t, h, a, b)
	if rb.Stored != 1 {
		t.Fatalf("river stored %d bundles for lake, want 1", rb.Stored)
	}
	_, rc := sync2(t, h, b, c)
	if rc.Messages != 1 {
		t.Fatalf("lake applied %d messages, want 1", rc.Messages)
	}
	wantStates(t, c, map[string]string{"north to lake": "received"})
	// river met lake, the destination: it dropped its copy, and carries
	// lake's receipt back to north.
	rb2, _ := sync2(t, h, b, c)
	_ = rb2
	held, err := b.Held(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, hb := range held {
		if hb.Dest.Type == bundle.DestNode && bundle.NodeID(hb.Dest.ID) == c.ID() {
			t.Errorf("river still holds bundle %s for lake after lake took it", hb.ID)
		}
	}
	sync2(t, h, a, b)
	wantStates(t, a, map[string]string{"north to lake": "delivered"})
	// Every inventory now agrees.
	for _, p := range [][2]*node.Node{{a, b}, {b, c}} {
		ra, _ := sync2(t, h, p[0], p[1])
		if !ra.InSync {
			t.Errorf("%s and %s not in sync at the end", p[0].Name(), p[1].Name())
		}
	}
}

// testArrival: a bundle for north reaches river by another carrier while
// river is in a session with north, after river computed the inventory the
// session compares. The session must not take north to hold it (and drop
// it as delivered) because the inventories compared were equal, nor
// because they were reconciled: it reaches north at the next contact.
func testArrival(t *testing.T, h Harness) {
	for _, equal := range []bool{true, false} {
		a, b, c := NewNode(t, "north"), NewNode(t, "river"), NewNode(t, "lake")
		Introduce(t, a, b, c)
		Send(t, c, a, "lake to north")
		if !equal {
			Send(t, a, b, "north to river")
		}
		var arrived Result
		la, lb := h.Connect(t, a, b)
		// River's second frame in is north's auth: river's inventory is
		// computed, the comparison not yet made.
		lb = BeforeRecv(lb, 2, func() {
			pc, pb := carriers.Pipe(64 << 10)
			arrived, _ = syncWithin(h.time(60*time.Second), b, c, pb, pc, carriers.Options{}, carriers.Options{})
		})
		ra, rb := h.syncPair(t, a, b, la, lb, h.opts(0), h.opts(0))
		if ra.Err != nil || rb.Err != nil || arrived.Err != nil {
			t.Fatalf("equal inventories %v: sync north-river %v / %v, lake-river %v", equal, ra.Err, rb.Err, arrived.Err)
		}
		if arrived.Report.Stored != 1 {
			t.Fatalf("equal inventories %v: river stored %d bundles from lake during the session, want 1", equal, arrived.Report.Stored)
		}
		if rb.Report.InSync != equal {
			t.Fatalf("equal inventories %v: river's session in sync %v", equal, rb.Report.InSync)
		}
		sync2(t, h, a, b)
		wantStates(t, a, map[string]string{"lake to north": "received"})
	}
}

// bigMessages queues messages from a to b worth about size bytes of text
// that compresses little, and returns the size of the sealed bundle.
func bigMessages(t testing.TB, a, b *node.Node, size int) int64 {
	t.Helper()
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ."
	rng := mrand.New(mrand.NewPCG(uint64(size), 7))
	body := make([]byte, bundle.MaxBodyLen)
	for size > 0 {
		n := min(size, len(body))
		for i := range body[:n] {
			body[i] = alphabet[rng.IntN(len(alphabet))]
		}
		Send(t, a, b, string(body[:n]))
		size -= n
	}
	held, err := a.Held(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, hb := range held {
		total += hb.Size
	}
	return total
}

func testResume(t *testing.T, h Harness) {
	a, b := NewNode(t, "north"), NewNode(t, "river")
	Introduce(t, a, b)
	size := bigMessages(t, a, b, int(h.size(2<<20)))
	cut := h.size(64<<10) + randInt(t, size-h.size(128<<10))
	la, lb := h.Connect(t, a, b)
	ra, rb := h.syncPair(t, a, b, CutAfter(la, cut), lb, h.opts(5*time.Second), h.opts(5*time.Second))
	if ra.Err == nil && rb.Err == nil {
		t.Fatalf("the session cut after %d bytes succeeded", cut)
	}
	first := rb.Report.Received.Bytes
	p, err := b.PartialOf(context.Background(), a.ID(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil || p.Have != first {
		t.Fatalf("after a cut at byte %d with %d received: partial %+v", cut, first, p)
	}
	_, rb2 := sync2(t, h, a, b)
	if rb2.Received.Resumed != 1 || rb2.Received.ResumedBytes != first {
		t.Errorf("resumed %d transfers from byte %d, want 1 from %d", rb2.Received.Resumed, rb2.Received.ResumedBytes, first)
	}
	if got := first + rb2.Received.Bytes; got != size {
		t.Errorf("%d + %d bytes crossed the link for a bundle of %d: resent %d", first, rb2.Received.Bytes, size, got-size)
	}
	if rb2.Messages == 0 {
		t.Errorf("river applied no messages after the resume")
	}
	if p, _ := b.PartialOf(context.Background(), a.ID(), 1); p != nil {
		t.Errorf("partial transfer left after the bundle was taken in: %+v", p)
	}
}

func testUntrusted(t *testing.T, h Harness) {
	a, c := NewNode(t, "north"), NewNode(t, "stranger")
	// c trusts a, a does not know c.
	card, _ := a.Card(nil, nil)
	if _, err := c.AddPeer(context.Background(), card, ""); err != nil {
		t.Fatal(err)
	}
	Send(t, c, a, "let me in")
	before := count(t, a)
	la, lc := h.Connect(t, a, c)
	ra, rc := h.syncPair(t, a, c, la, lc, h.opts(0), h.opts(0))
	if !errors.Is(ra.Err, carriers.ErrUntrusted) || !strings.Contains(ra.Err.Error(), "not a trusted peer") {
		t.Errorf("north: %v, want a refusal of an untrusted peer", ra.Err)
	}
	var refused *carriers.RefusedError
	if !errors.As(rc.Err, &refused) || !strings.Contains(refused.Reason, "not a trusted peer of north") {
		t.Errorf("stranger: %v, want to be told it is not trusted", rc.Err)
	}
	if after := count(t, a); after != before {
		t.Errorf("north accounts for %d bundles after refusing, %d before", after, before)
	}
}

func count(t testing.TB, n *node.Node) uint64 {
	t.Helper()
	v, err := n.Vector(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.Count()
}

var garbageCases = []struct {
	name  string
	valid int // frames of a real session before the garbage
}{{"AtOnce", 0}, {"AfterHello", 1}, {"AfterAuth", 2}}

func testGarbage(t *testing.T, h Harness, valid int) {
	a, b := NewNode(t, "north"), NewNode(t, "river")
	Introduce(t, a, b)
	Send(t, a, b, "hello")
	before := count(t, b)
	la, lb := h.Connect(t, a, b)
	_, rb := h.syncPair(t, a, b, Garbage(la, valid), lb, h.opts(3*time.Second), h.opts(3*time.Second))
	if !errors.Is(rb.Err, carriers.ErrProtocol) {
		t.Errorf("river: %v, want a protocol error", rb.Err)
	}
	if after := count(t, b); after != before {
		t.Errorf("river accounts for %d bundles after garbage, %d before", after, before)
	}
}

var stallCases = []struct {
	name  string
	after int64 // bytes before the peer goes silent
}{{"BeforeHello", 0}, {"MidTransfer", 300 << 10}}

func testStall(t *testing.T, h Harness, after int64) {
	after = h.size(after)
	var a, b *node.Node
	var rb Result
	// On a loaded machine river may give up (300 ms of silence) before
	// the first bytes of a mid-transfer stall arrive; then there is no
	// partial to check, and the case is tried again on fresh nodes.
	for try := 1; ; try++ {
		a, b = NewNode(t, "north"), NewNode(t, "river")
		Introduce(t, a, b)
		bigMessages(t, a, b, int(h.size(1<<20)))
		la, lb := h.Connect(t, a, b)
		start := time.Now()
		// The silent side gives up later than river notices.
		_, rb = h.syncPair(t, a, b, StallAfter(la, after), lb, h.opts(time.Second), h.opts(300*time.Millisecond))
		if !errors.Is(rb.Err, carriers.ErrStalled) {
			t.Errorf("river: %v, want a stalled peer", rb.Err)
		}
		if d := time.Since(start); d > h.time(10*time.Second) {
			t.Errorf("a stall took %s to notice", d)
		}
		if after == 0 || rb.Report.Received.Bytes > 0 || try == 3 {
			break
		}
		t.Logf("try %d: river stalled before any bytes arrived; again", try)
	}
	if after > 0 {
		p, _ := b.PartialOf(context.Background(), a.ID(), 1)
		if p == nil || p.Have != rb.Report.Received.Bytes {
			t.Errorf("after a stall with %d bytes received, partial %+v", rb.Report.Received.Bytes, p)
		}
	}
}

var tamperCases = []struct {
	name string
	at   int64 // the offset of the byte changed within the bundle
}{{"Header", 20}, {"Payload", 40 << 10}}

func testTamper(t *testing.T, h Harness, at int64) {
	if at > 1<<10 {
		at = h.size(at)
	}
	a, b := NewNode(t, "north"), NewNode(t, "river")
	Introduce(t, a, b)
	bigMessages(t, a, b, int(h.size(200<<10)))
	before := count(t, b)
	la, lb := h.Connect(t, a, b)
	ra, rb := h.syncPair(t, a, b, Tamper(la, int(at)), lb, h.opts(0), h.opts(0))
	if !errors.Is(rb.Err, carriers.ErrBadBundle) {
		t.Errorf("river: %v, want a refusal of the bundle", rb.Err)
	}
	var refused *carriers.RefusedError
	if !errors.As(ra.Err, &refused) {
		t.Errorf("north: %v, want to be told why", ra.Err)
	}
	if after := count(t, b); after != before {
		t.Errorf("river accounts for %d bundles, %d before", after, before)
	}
	if ps, _ := b.Partials(context.Background()); len(ps) != 0 {
		t.Errorf("river kept %d partial transfers of the bad bundle", len(ps))
	}
}

func testQuota(t *testing.T, h Harness) {
	a, b, c := NewNode(t, "north"), NewNode(t, "river"), NewNode(t, "lake")
	Introduce(t, a, b, c)
	// Two bundles of 300 KB for two destinations; river takes 400 KB.
	bigMessages(t, a, b, int(h.size(300<<10)))
	bigMessages(t, a, c, int(h.size(300<<10)))
	la, lb := h.Connect(t, a, b)
	quota := h.opts(0)
	quota.MaxReceive = h.size(400 << 10)
	ra, rb := h.syncPair(t, a, b, la, lb, h.opts(0), quota)
	if ra.Err != nil || rb.Err != nil {
		t.Fatalf("sync: %v / %v", ra.Err, rb.Err)
	}
	if rb.Report.Received.Bundles != 1 || rb.Report.Left != 1 {
		t.Errorf("under quota river took %d bundles and left %d, want 1 and 1", rb.Report.Received.Bundles, rb.Report.Left)
	}
	_, rb2 := sync2(t, h, a, b)
	if rb2.Received.Bundles != 1 {
		t.Errorf("the next contact brought %d bundles, want the 1 left", rb2.Received.Bundles)
	}
}

func randInt(t testing.TB, n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(max(n, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return v.Int64()
}
