package carriertest

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"ferry/carriers"
)

// CutAfter wraps a link so that it breaks, both ways, once n bytes of
// frames have been sent through it: the frame that crosses the mark is
// lost, as a cable pulled out mid-frame loses it.
func CutAfter(l carriers.Link, n int64) carriers.Link {
	return &cutLink{Link: l, left: n}
}

type cutLink struct {
	carriers.Link
	mu   sync.Mutex
	left int64
}

func (c *cutLink) Send(f []byte) error {
	c.mu.Lock()
	c.left -= int64(len(f))
	cut := c.left < 0
	c.mu.Unlock()
	if cut {
		c.Link.Close()
		return errCut
	}
	return c.Link.Send(f)
}

type cutError struct{}

func (cutError) Error() string { return "carriertest: link cut" }

var errCut error = cutError{}

// StallAfter wraps a link whose sender goes silent after n bytes: it
// neither sends nor fails, like a peer that hangs.
func StallAfter(l carriers.Link, n int64) carriers.Link {
	return &stallLink{Link: l, left: n, quiet: make(chan struct{})}
}

type stallLink struct {
	carriers.Link
	left  int64
	once  sync.Once
	quiet chan struct{}
	n     atomic.Int64
}

func (s *stallLink) Send(f []byte) error {
	if s.n.Add(int64(len(f))) > s.left {
		s.once.Do(func() {})
		<-s.quiet // until Close
		return errCut
	}
	return s.Link.Send(f)
}

func (s *stallLink) Close() error {
	select {
	case <-s.quiet:
	default:
		close(s.quiet)
	}
	return s.Link.Close()
}

// Garbage wraps a link that sends the first valid frames of a real
// session and then random bytes in place of every later frame.
func Garbage(l carriers.Link, valid int) carriers.Link {
	return &garbageLink{Link: l, valid: valid}
}

type garbageLink struct {
	carriers.Link
	valid int
	sent  atomic.Int64
}

func (g *garbageLink) Send(f []byte) error {
	if int(g.sent.Add(1)) <= g.valid {
		return g.Link.Send(f)
	}
	junk := make([]byte, len(f))
	rand.Read(junk)
	junk[0] = 0x7f // no frame type
	return g.Link.Send(junk)
}

// Tamper wraps a link that changes byte at of the bundles it carries, in
// the data frames, as a peer that offers one bundle and sends other bytes.
func Tamper(l carriers.Link, at int) carriers.Link {
	return &tamperLink{Link: l, at: int64(at)}
}

type tamperLink struct {
	carriers.Link
	at int64
}

func (t *tamperLink) Send(f []byte) error {
	if len(f) > 0 && carriers.FrameType(f[0]) == carriers.FrameData {
		_, k1 := binary.Uvarint(f[1:])
		off, k2 := binary.Uvarint(f[1+k1:])
		data := f[1+k1+k2:]
		if k1 > 0 && k2 > 0 && int64(off) <= t.at && t.at < int64(off)+int64(len(data)) {
			g := append([]byte(nil), f...)
			g[1+k1+k2+int(t.at-int64(off))] ^= 0x55
			return t.Link.Send(g)
		}
	}
	return t.Link.Send(f)
}

// BeforeRecv wraps a link that calls fn once, before it hands over the
// n-th frame received (from 1): the moment to make something happen to a
// node in the middle of its session, as another carrier would.
func BeforeRecv(l carriers.Link, n int, fn func()) carriers.Link {
	return &beforeRecvLink{Link: l, n: n, fn: fn}
}

type beforeRecvLink struct {
	carriers.Link
	n    int
	fn   func()
	seen atomic.Int64
}

func (b *beforeRecvLink) Recv() ([]byte, error) {
	f, err := b.Link.Recv()
	if err == nil && b.seen.Add(1) == int64(b.n) {
		b.fn()
	}
	return f, err
}
