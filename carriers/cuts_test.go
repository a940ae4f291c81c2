package carriers_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

// cutProxy forwards TCP connections to target and cuts each, both ways,
// after its byte budget: a cable pulled at a random byte.
type cutProxy struct {
	ln      net.Listener
	target  string
	budgets chan int64
	wire    atomic.Int64 // bytes forwarded, both ways
	wg      sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, budgets: make(chan int64, 1)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		budget := <-p.budgets
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var left atomic.Int64
		left.Store(budget)
		cut := func() { c.Close(); s.Close() }
		pump := func(dst, src net.Conn) {
			defer p.wg.Done()
			defer cut()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					rest := left.Add(-int64(n))
					if rest < 0 {
						n += int(rest) // forward up to the cut, then cut
					}
					if n > 0 {
						dst.Write(buf[:n])
						p.wire.Add(int64(n))
					}
					if rest < 0 {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		p.wg.Add(2)
		go pump(s, c)
		go pump(c, s)
	}
}

// TestResumeThroughTwentyCuts moves a 50 MB bundle over TCP and TLS while
// the connection is cut at random bytes, more than twenty times: every
// session continues from the byte the last one stopped at, so the bundle
// bytes that cross the link add up to the bundle's size exactly.
func TestResumeThroughTwentyCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 50 MB")
	}
	north, river, lake, hill := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river"), carriertest.NewNode(t, "lake"), carriertest.NewNode(t, "hill")
	carriertest.Introduce(t, north, river, lake, hill)
	size := bigBundle(t, hill, north, lake, 50<<20)
	// A 50 MB bundle is bulky: ferry's routing would hand north's only
	// copy on only towards a node likelier to reach lake (docs/routing.md).
	// This test is about resuming, so north hands on everything.
	north.SetRouting(node.Routing{Mode: node.RouteEpidemic})
	stats := &carriers.Stats{}
	t.Logf("a bundle of %.1f MB for lake, carried by river", float64(size)/1e6)

	srv := carriers.NewTCPServer(river, "127.0.0.1:0")
	srv.Session.Idle = 10 * time.Second
	srv.Session.Stats = stats
	if err := srv.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	proxy := newCutProxy(t, srv.ListenAddr().String())
	tcp, err := carriers.NewTCP(north)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(50, 20))
	var sent int64
	cuts := 0
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if attempt > 200 {
			t.Fatal("no end to the transfer")
		}
		budget := int64(1 << 62)
		if cuts < 40 {
			budget = size/50 + rng.Int64N(size/50) // 1.5 MB ± 33 %
		}
		proxy.budgets <- budget
		l, err := tcp.Dial(t.Context(), proxy.ln.Addr().String(), river.ID())
		if err != nil {
			cuts++ // cut inside the TLS handshake
			continue
		}
		rep, err := carriers.Sync(t.Context(), north, l, carriers.Options{Idle: 10 * time.Second, Peer: river.ID()})
		sent += rep.Sent.Bytes
		if err == nil {
			if rep.Sent.Bundles == 1 {
				break
			}
			continue // river was still letting go of the last session
		}
		cuts++
	}
	elapsed := time.Since(start)
	if cuts < 20 {
		t.Errorf("only %d cuts", cuts)
	}
	// What river took in, over all sessions, is the bundle, once: ask
	// river's store, which is what counts.
	held, err := river.Held(t.Context())
	if err != nil || len(held) != 1 || held[0].Size != size {
		t.Fatalf("river holds %+v (%v)", held, err)
	}
	ps, _ := river.Partials(context.Background())
	if len(ps) != 0 {
		t.Errorf("river still has %d partial transfers", len(ps))
	}
	// River, over all its sessions, took in each byte of the bundle once.
	srv.Close()
	ps2, _ := stats.Peer(north.ID())
	if ps2.DataIn != size {
		t.Errorf("river received %d bundle bytes for a bundle of %d: %d resent", ps2.DataIn, size, ps2.DataIn-size)
	}
	wire := proxy.wire.Load()
	t.Logf("%d cuts, %s; %d bundle bytes received for a bundle of %d; %.1f MB on the wire (+%.2f %%: TLS, framing, hellos, frames lost in flight)",
		cuts, elapsed.Round(time.Millisecond), ps2.DataIn, size, float64(wire)/1e6, 100*float64(wire-size)/float64(size))
}

// bigBundle makes a bundle of about size incompressible bytes (an archive
// file) from hill to b, hands it to a to carry, and returns its size.
func bigBundle(t testing.TB, hill, a, b *node.Node, size int) int64 {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	now := time.Now()
	h := bundle.Header{Kind: bundle.KindArchive, Priority: 4, Source: hill.ID(), Dest: bundle.ToNode(b.ID()),
		Seq: 1, Created: now, Expires: now.Add(24 * time.Hour)}
	w, err := bundle.NewWriter(f, h, hill.Identity().Sign, b.Identity().Age.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	fh, _ := (&bundle.FileHeader{Path: "big.bin", Size: uint64(size)}).AppendBinary(nil)
	if err := w.BeginRecord(bundle.RecordFile, uint64(len(fh)+size)); err != nil {
		t.Fatal(err)
	}
	w.Write(fh)
	rng := rand.NewChaCha8([32]byte{5, 0})
	chunk := make([]byte, 1<<20)
	for left := size; left > 0; left -= len(chunk) {
		rng.Read(chunk)
		if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekStart)
	if res, err := a.Ingest(t.Context(), f); err != nil || res.Status != node.StatusStored {
		t.Fatalf("north takes the big bundle: %+v, %v", res, err)
	}
	return w.Size()
}
