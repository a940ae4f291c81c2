package node_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

func routingNodes(t *testing.T, names ...string) (*clock, []*node.Node) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	var ns []*node.Node
	for _, name := range names {
		ns = append(ns, newNode(t, name, c))
	}
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			link(t, ns[i], ns[j])
		}
	}
	return c, ns
}

// bulk seals an archive bundle of size random bytes from n for dest.
func bulk(t *testing.T, n, dest *node.Node, size int) node.BundleInfo {
	t.Helper()
	body := make([]byte, size)
	rand.Read(body)
	id, _, err := n.SealRecords(t.Context(), dest.ID(), bundle.KindArchive, 4, 0, func(w *bundle.Writer) error {
		return w.WriteRecord(bundle.RecordFile, body)
	})
	if err != nil {
		t.Fatal(err)
	}
	held, err := n.Held(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range held {
		if b.ID == id {
			return b
		}
	}
	t.Fatal("sealed bundle not held")
	return node.BundleInfo{}
}

func TestPredictabilityEncounterAgingTransitivity(t *testing.T) {
	c, ns := routingNodes(t, "a", "b", "c")
	a, b, cc := ns[0], ns[1], ns[2]
	ctx := t.Context()
	if err := a.Encounter(ctx, b.ID(), map[bundle.NodeID]float64{cc.ID(): 0.8}); err != nil {
		t.Fatal(err)
	}
	p, err := a.Predictability(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(p[b.ID()]-0.75) > 1e-9 {
		t.Errorf("P(a,b) after one encounter = %v, want 0.75", p[b.ID()])
	}
	if want := 0.75 * 0.8 * 0.25; math.Abs(p[cc.ID()]-want) > 1e-9 {
		t.Errorf("P(a,c) by transitivity = %v, want %v", p[cc.ID()], want)
	}
	a.Encounter(ctx, b.ID(), nil)
	p, _ = a.Predictability(ctx)
	if want := 0.75 + 0.25*0.75; math.Abs(p[b.ID()]-want) > 1e-9 {
		t.Errorf("P(a,b) after two encounters = %v, want %v", p[b.ID()], want)
	}
	before := p[b.ID()]
	c.t = c.t.Add(6 * 24 * time.Hour) // 24 aging units
	p, _ = a.Predictability(ctx)
	if want := before * math.Pow(0.98, 24); math.Abs(p[b.ID()]-want) > 1e-9 {
		t.Errorf("P(a,b) after six days = %v, want %v", p[b.ID()], want)
	}
}

func TestRoutesRoundTripAndSignature(t *testing.T) {
	_, ns := routingNodes(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := t.Context()
	a.Encounter(ctx, b.ID(), nil)
	raw, err := a.SignedRoutes(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	r, err := node.ParseRoutes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != a.ID() || math.Abs(r.P[b.ID()]-0.75) > 1.0/65535 {
		t.Errorf("parsed %v, P %v", r.Node.Short(), r.P)
	}
	again, err := r.Marshal(a.Identity().Sign)
	if err != nil || !bytes.Equal(again, raw) {
		t.Errorf("marshal after parse differs: %v", err)
	}
	bad := bytes.Clone(raw)
	bad[len("FERRYRT\x00\x01")+33] ^= 1
	if _, err := node.ParseRoutes(bad); !errors.Is(err, node.ErrRoutesSignature) {
		t.Errorf("altered summary: %v", err)
	}
}

func FuzzParseRoutes(f *testing.F) {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	dir := f.TempDir()
	a, err := node.Init(filepath.Join(dir, "a"), "a", node.Options{Now: c.now})
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	r := &node.Routes{Node: a.ID(), At: c.t, P: map[bundle.NodeID]float64{{1}: 0.5, {2}: 0.25},
		Delivered: []node.SeqRef{{Source: bundle.NodeID{3}, Seq: 7}, {Source: bundle.NodeID{1}, Seq: 1}}}
	raw, err := r.Marshal(a.Identity().Sign)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("FERRYRT\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := node.ParseRoutes(b)
		if err != nil {
			return
		}
		if len(r.Delivered) > 0 && r.Delivered[0].Seq == 0 {
			t.Fatal("seq 0 accepted")
		}
	})
}

// TestPlanSprayAndWait: a bulky bundle's source hands copies to three
// nodes other than the destination and keeps the last; a relay hands its
// copy on only towards a node likelier to reach the destination; the
// destination always gets it.
func TestPlanSprayAndWait(t *testing.T) {
	_, ns := routingNodes(t, "src", "r1", "r2", "r3", "r4", "dst")
	src, dst := ns[0], ns[5]
	ctx := t.Context()
	b := bulk(t, src, dst, 100<<10)
	for i, relay := range ns[1:5] {
		plan, err := src.Plan(ctx, node.Contact{Peer: relay.ID(), Medium: "tcp"}, []node.BundleInfo{b})
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 3; (len(plan) == 1) != want {
			t.Fatalf("hand-off %d: planned %d, want %v", i+1, len(plan), want)
		}
		if len(plan) == 1 {
			if err := src.MarkCarried(ctx, relay.ID(), "tcp", []bundle.ID{b.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The last copy goes towards a node likelier to reach dst.
	plan, _ := src.Plan(ctx, node.Contact{Peer: ns[4].ID(), Medium: "tcp", Reach: map[bundle.NodeID]float64{dst.ID(): 0.5}}, []node.BundleInfo{b})
	if len(plan) != 1 {
		t.Fatal("last copy not forwarded to a node likelier to reach the destination")
	}
	src.MarkCarried(ctx, ns[4].ID(), "tcp", []bundle.ID{b.ID})
	plan, _ = src.Plan(ctx, node.Contact{Peer: ns[3].ID(), Medium: "tcp", Reach: map[bundle.NodeID]float64{dst.ID(): 0.9}}, []node.BundleInfo{b})
	if len(plan) != 0 {
		t.Fatal("a fifth copy planned")
	}
	plan, _ = src.Plan(ctx, node.Contact{Peer: dst.ID(), Medium: "tcp"}, []node.BundleInfo{b})
	if len(plan) != 1 {
		t.Fatal("the destination did not get the bundle")
	}
	// Over LoRa, a bulky bundle goes to nobody but its destination.
	b2 := bulk(t, src, dst, 100<<10)
	plan, _ = src.Plan(ctx, node.Contact{Peer: ns[1].ID(), Medium: "lora"}, []node.BundleInfo{b2})
	if len(plan) != 0 {
		t.Fatal("bulky bundle planned over LoRa")
	}
	// Epidemic hands it to everyone (but not over LoRa), direct to the
	// destination only.
	src.SetRouting(node.Routing{Mode: node.RouteEpidemic})
	if plan, _ = src.Plan(ctx, node.Contact{Peer: ns[3].ID(), Medium: "tcp"}, []node.BundleInfo{b}); len(plan) != 1 {
		t.Error("epidemic withheld a bundle")
	}
	src.SetRouting(node.Routing{Mode: node.RouteDirect})
	if plan, _ = src.Plan(ctx, node.Contact{Peer: ns[3].ID(), Medium: "tcp"}, []node.BundleInfo{b2}); len(plan) != 0 {
		t.Error("direct delivery handed a bundle to a relay")
	}
}

// TestPlanSprayTowardsFocusByMargin: once the source knows a way to the
// destination, it spends its spare copies only on peers likelier by more
// than the focus margin; so does a relay with its one copy; the
// destination always gets the bundle.
func TestPlanSprayTowardsFocusByMargin(t *testing.T) {
	_, ns := routingNodes(t, "src", "relay", "peer", "dst")
	src, relay, peer, dst := ns[0], ns[1], ns[2], ns[3]
	ctx := t.Context()
	b := bulk(t, src, dst, 100<<10)
	plan := func(n *node.Node, to *node.Node, reach float64) int {
		t.Helper()
		p, err := n.Plan(ctx, node.Contact{Peer: to.ID(), Medium: "tcp", Reach: map[bundle.NodeID]float64{dst.ID(): reach}}, []node.BundleInfo{b})
		if err != nil {
			t.Fatal(err)
		}
		return len(p)
	}
	// Knowing no way to dst, the source sprays blindly.
	if plan(src, peer, 0) != 1 {
		t.Fatal("source knowing no way did not spray")
	}
	// Having met dst (P = 0.75), it sprays only to clearly likelier peers.
	if err := src.Encounter(ctx, dst.ID(), nil); err != nil {
		t.Fatal(err)
	}
	if plan(src, peer, 0.5) != 0 {
		t.Error("source sprayed a copy to a peer less likely than itself")
	}
	if plan(src, peer, 0.75+node.FocusMargin/2) != 0 {
		t.Error("source sprayed a copy to a peer barely likelier than itself")
	}
	if plan(src, peer, 0.75+node.FocusMargin*1.5) != 1 {
		t.Error("source did not spray a copy to a clearly likelier peer")
	}
	// A relay (P = 0.75) hands its copy on only past the margin.
	if err := relay.Encounter(ctx, dst.ID(), nil); err != nil {
		t.Fatal(err)
	}
	if plan(relay, peer, 0.75+node.FocusMargin/2) != 0 {
		t.Error("relay handed its copy to a peer barely likelier than itself")
	}
	if plan(relay, peer, 0.75+node.FocusMargin*1.5) != 1 {
		t.Error("relay kept its copy from a clearly likelier peer")
	}
	if plan(relay, dst, 0) != 1 {
		t.Error("relay did not hand the bundle to its destination")
	}
	// Far along a chain every predictability is small: a peer one hop
	// closer (about four times as likely) gets the copy, one barely
	// likelier does not.
	lone := peer
	if err := lone.Encounter(ctx, relay.ID(), map[bundle.NodeID]float64{dst.ID(): 0.1}); err != nil {
		t.Fatal(err)
	}
	mine, err := lone.Predictability(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := mine[dst.ID()] // 0.75 × 0.1 × 0.25 ≈ 0.019
	if p <= 0 || p >= node.FocusMargin/2 {
		t.Fatalf("P(peer, dst) = %v, want a small transitive value", p)
	}
	if plan(lone, relay, p*1.5) != 0 {
		t.Error("a copy went to a peer barely likelier, far from the destination")
	}
	if plan(lone, relay, p*4) != 1 {
		t.Error("a copy did not go one hop closer along a chain")
	}
	// Epidemic hands it to anyone.
	relay.SetRouting(node.Routing{Mode: node.RouteEpidemic})
	if plan(relay, peer, 0) != 1 {
		t.Error("epidemic withheld a bundle")
	}
}

// TestPlanScarcePrefersLikelierPeer: when capacity is short, messages go
// only to a peer at least as likely as this node to deliver them, the
// likeliest destinations first.
func TestPlanScarcePrefersLikelierPeer(t *testing.T) {
	_, ns := routingNodes(t, "a", "b", "far", "near")
	a, b, far, near := ns[0], ns[1], ns[2], ns[3]
	ctx := t.Context()
	for _, to := range []*node.Node{far, near} {
		if _, err := a.Send(ctx, "user", node.Address{User: "user", Node: to.Name()}, "hello "+to.Name()); err != nil {
			t.Fatal(err)
		}
	}
	held, err := a.Held(ctx)
	if err != nil || len(held) != 2 {
		t.Fatalf("held %d, %v", len(held), err)
	}
	a.Encounter(ctx, far.ID(), nil) // a meets far itself: P(a,far) = 0.75
	reach := map[bundle.NodeID]float64{far.ID(): 0.1, near.ID(): 0.6}
	plan, err := a.Plan(ctx, node.Contact{Peer: b.ID(), Medium: "lora", Reach: reach}, held)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || bundle.NodeID(plan[0].Dest.ID) != near.ID() {
		t.Fatalf("planned %d bundles over LoRa, want only the one for near", len(plan))
	}
	plan, _ = a.Plan(ctx, node.Contact{Peer: b.ID(), Medium: "tcp", Reach: reach}, held)
	if len(plan) != 2 {
		t.Fatalf("planned %d bundles over TCP, want both (epidemic)", len(plan))
	}
}

// TestCarryQuotaRefusesAndLearnRoutesDrops: a relay takes in for others
// up to its quota, refuses more with ErrCarryQuota; a summary naming a
// bundle delivered drops its body.
func TestCarryQuotaRefusesAndLearnRoutesDrops(t *testing.T) {
	_, ns := routingNodes(t, "src", "relay", "dst")
	src, relay, dst := ns[0], ns[1], ns[2]
	ctx := t.Context()
	relay.SetRouting(node.Routing{PeerQuota: 150 << 10})
	b1 := bulk(t, src, dst, 100<<10)
	b2 := bulk(t, src, dst, 100<<10)
	ingest := func(b node.BundleInfo) error {
		f, err := src.OpenBundle(b.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = relay.Ingest(ctx, f)
		return err
	}
	if err := ingest(b1); err != nil {
		t.Fatal(err)
	}
	if err := ingest(b2); !errors.Is(err, node.ErrCarryQuota) {
		t.Fatalf("second bundle over the quota: %v", err)
	}
	if held, _ := relay.Held(ctx); len(held) != 1 {
		t.Fatalf("relay holds %d bundles", len(held))
	}
	// dst takes b1 in and says so in its summary.
	f, _ := src.OpenBundle(b1.ID)
	if _, err := dst.Ingest(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	raw, err := dst.SignedRoutes(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	r, err := node.ParseRoutes(raw)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := relay.LearnRoutes(ctx, r)
	if err != nil || dropped != 1 {
		t.Fatalf("dropped %d, %v", dropped, err)
	}
	if held, _ := relay.Held(ctx); len(held) != 0 {
		t.Fatalf("relay still holds %d bundles", len(held))
	}
	if _, err := os.Stat(filepath.Join(relay.Dir(), "spool")); err != nil {
		t.Fatal(err)
	}
	// The direct-only relay takes nothing for others.
	relay.SetRouting(node.Routing{Mode: node.RouteDirect})
	if err := ingest(b2); !errors.Is(err, node.ErrDirectOnly) {
		t.Fatalf("direct-only relay: %v", err)
	}
}
