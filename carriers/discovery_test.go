package carriers_test

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

func TestBeaconRoundTrip(t *testing.T) {
	a := carriertest.NewNode(t, "north")
	b := carriers.Beacon{Node: a.ID(), Port: 7373, Digest: [16]byte{1, 2}, At: time.Unix(1_800_000_000, 0).UTC()}
	p := b.Marshal(a.Identity().Sign)
	if len(p) != 130 {
		t.Fatalf("beacon of %d bytes, want 130", len(p))
	}
	got, err := carriers.ParseBeacon(p)
	if err != nil || *got != b {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	p[40] ^= 1
	if _, err := carriers.ParseBeacon(p); err == nil {
		t.Error("a forged beacon parsed")
	}
}

// freeUDP returns a loopback UDP address nobody listens on.
func freeUDP(t *testing.T) string {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// finds records what a discovery found.
type finds struct {
	mu    sync.Mutex
	peers map[bundle.NodeID]string
}

func (f *finds) add(p bundle.NodeID, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peers == nil {
		f.peers = map[bundle.NodeID]string{}
	}
	f.peers[p] = addr
}

func (f *finds) get(p bundle.NodeID) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.peers[p]
	return a, ok
}

// TestDiscoveryFindsPeersOutOfSync runs three nodes' discovery on
// loopback, each beaconing to the others: north and river find each
// other while they differ, and nobody reacts to the stranger.
func TestDiscoveryFindsPeersOutOfSync(t *testing.T) {
	a, b, s := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river"), carriertest.NewNode(t, "stranger")
	carriertest.Introduce(t, a, b)
	card, _ := a.Card(nil, nil)
	s.AddPeer(t.Context(), card, "") // the stranger trusts north; north does not trust it
	carriertest.Send(t, a, b, "hello over the LAN")
	if _, err := a.Held(t.Context()); err != nil { // sealed: the inventories differ
		t.Fatal(err)
	}
	nodes := []*node.Node{a, b, s}
	addrs := []string{freeUDP(t), freeUDP(t), freeUDP(t)}
	found := make([]finds, 3)
	for i, n := range nodes {
		d := carriers.NewDiscovery(n, 7000+i)
		d.Listen = addrs[i]
		d.Interval = 50 * time.Millisecond
		for j := range nodes {
			if j != i {
				d.Targets = append(d.Targets, addrs[j])
			}
		}
		d.Found = found[i].add
		if err := d.Open(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer d.Close()
	}
	deadline := time.Now().Add(30 * time.Second) // only bounds a hang
	for {
		addrA, okA := found[0].get(b.ID())
		_, okB := found[1].get(a.ID())
		if okA && okB {
			if addrA != "127.0.0.1:"+strconv.Itoa(7001) {
				t.Errorf("north found river at %s", addrA)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("north found river: %v; river found north: %v", okA, okB)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if _, ok := found[0].get(s.ID()); ok {
		t.Error("north reacted to a stranger's beacon")
	}
	if _, ok := found[1].get(s.ID()); ok {
		t.Error("river reacted to a stranger's beacon")
	}
}

// TestDiscoveryQuietWhenInSync: two nodes in sync hear each other and
// leave each other alone; a message waiting for a peer is worth a sync.
func TestDiscoveryQuietWhenInSync(t *testing.T) {
	a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, a, b)
	addrs := []string{freeUDP(t), freeUDP(t)}
	found := make([]finds, 2)
	for i, n := range []*node.Node{a, b} {
		d := carriers.NewDiscovery(n, 7000+i)
		d.Listen, d.Targets, d.Interval = addrs[i], []string{addrs[1-i]}, 50*time.Millisecond
		d.Found = found[i].add
		if err := d.Open(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer d.Close()
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok := found[0].get(b.ID()); ok {
		t.Error("north wants to sync with river, already in sync")
	}
	carriertest.Send(t, a, b, "waiting")
	// The next beacons show it; the deadline only bounds a hang.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := found[0].get(b.ID()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("north has a message waiting for river and does not want to sync")
		}
	}
}
