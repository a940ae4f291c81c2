package carriers_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

// tcpPair connects a to b over real TCP and TLS on loopback: b accepts,
// a dials.
func tcpPair(t testing.TB, a, b *node.Node) (carriers.Link, carriers.Link) {
	t.Helper()
	ta, err := carriers.NewTCP(a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := carriers.NewTCP(b)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		l   carriers.Link
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		l, err := tb.Server(context.Background(), c)
		ch <- res{l, err}
	}()
	la, err := ta.Dial(context.Background(), ln.Addr().String(), b.ID())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { la.Close(); r.l.Close() })
	return la, r.l
}

func TestConformanceTCP(t *testing.T) {
	carriertest.Run(t, carriertest.Harness{Connect: tcpPair})
}

func TestTCPLinkNamesThePeer(t *testing.T) {
	a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	la, lb := tcpPair(t, a, b)
	if la.Info().Peer != b.ID() || lb.Info().Peer != a.ID() {
		t.Errorf("TLS peers: %s, %s", la.Info().Peer.Short(), lb.Info().Peer.Short())
	}
	if len(la.Info().Binding) != 32 || string(la.Info().Binding) != string(lb.Info().Binding) {
		t.Errorf("channel bindings differ")
	}
}

func TestTCPDialRefusesAnotherNode(t *testing.T) {
	a, b, c := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river"), carriertest.NewNode(t, "lake")
	srv := carriers.NewTCPServer(b, "127.0.0.1:0")
	if err := srv.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ta, _ := carriers.NewTCP(a)
	// Dialing river's address expecting lake: the handshake fails.
	_, err := ta.Dial(t.Context(), srv.ListenAddr().String(), c.ID())
	if err == nil || !strings.Contains(err.Error(), "not "+c.ID().Short()) {
		t.Errorf("dial of the wrong node: %v", err)
	}
}

// TestTCPServerRefusesGarbage sends bytes that are not TLS, then TLS with
// garbage frames, to a listening node: it hangs up, and stores nothing.
func TestTCPServerRefusesGarbage(t *testing.T) {
	b := carriertest.NewNode(t, "river")
	srv := carriers.NewTCPServer(b, "127.0.0.1:0")
	srv.Session.Idle = 2 * time.Second
	if err := srv.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("tcp", srv.ListenAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\nthis is not a ferry node at all"))
	c.SetReadDeadline(time.Now().Add(20 * time.Second)) // within the 30 s handshake timeout
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
				t.Fatal("the server kept the connection open")
			}
			break
		}
	}
	c.Close()
	v, err := b.Vector(t.Context())
	if err != nil || v.Count() != 0 {
		t.Errorf("river accounts for %d bundles (%v)", v.Count(), err)
	}
}

// TestTCPServerSyncs dials a listening server as ferry sync does.
func TestTCPServerSyncs(t *testing.T) {
	a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, a, b)
	carriertest.Send(t, a, b, "over tcp")
	stats := &carriers.Stats{}
	srv := carriers.NewTCPServer(b, "127.0.0.1:0")
	srv.Session.Stats = stats
	if err := srv.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ta, _ := carriers.NewTCP(a)
	l, err := ta.Dial(t.Context(), srv.ListenAddr().String(), b.ID())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := carriers.Sync(t.Context(), a, l, carriers.Options{Peer: b.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent.Bundles != 1 || rep.Medium != "tcp" {
		t.Errorf("report: %+v", rep)
	}
	if st := carriertest.States(t, a); st["over tcp"] != "delivered" {
		t.Errorf("message state %q, want delivered", st["over tcp"])
	}
	// The server's record of the peer.
	deadline := time.Now().Add(30 * time.Second) // only bounds a hang
	for {
		ps, ok := stats.Peer(a.ID())
		if ok && ps.Sessions == 1 {
			if ps.Name != "north" || ps.BytesIn == 0 || ps.BundlesIn != 1 || ps.Medium != "tcp" {
				t.Errorf("stats: %+v", ps)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stats for north: %+v", stats.Peers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = bundle.NodeID{}
}
