package ble

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/att"
	"github.com/go-ble/ble/linux/gatt"

	"ferry/carriers"
)

// radio configures an emulated BLE connection: two fake ble.Conns over
// net.Pipe, with go-ble's real ATT server and GATT client on them.
type radio struct {
	// MTU is the ATT MTU both sides offer (a phone asks for 517; go-ble
	// caps at 515).
	MTU int
	// Rate is the link rate in ATT PDU bytes per second, each way; zero
	// means as fast as the CPU goes.
	Rate int64
	// CutAfter disconnects after this many PDU bytes, both ways
	// counted; zero means never.
	CutAfter int64
}

// fakeConn is one end of an emulated L2CAP ATT channel: each PDU is a
// 2-byte length and its bytes on a net.Pipe.
type fakeConn struct {
	ctx          context.Context
	c            net.Conn
	local, peer  ble.Addr
	mtu          sync.Mutex
	rxMTU, txMTU int
	wmu          sync.Mutex
	pace         pacer
	air          *air
	disc         chan struct{}
	once         sync.Once
	hdr          [2]byte
	end          int // index in air.ends
	wbuf         []byte
}

// air is what both ends share: the bytes sent and when to cut.
type air struct {
	sent     atomic.Int64
	cutAfter int64
	// maxValue is the longest attribute value notified or written
	// without response.
	maxValue atomic.Int64
	// pdu counts the PDU bytes each end sent: [0] the central, [1] the
	// peripheral.
	pdu  [2]atomic.Int64
	ends [2]*fakeConn
}

func (a *air) cut() {
	for _, c := range a.ends {
		c.Close()
	}
}

// pacer spaces writes to a rate, on a virtual clock so that sleeps are
// few and the average is exact.
type pacer struct {
	rate int64
	next time.Time
}

func (p *pacer) wait(n int) {
	if p.rate <= 0 {
		return
	}
	now := time.Now()
	// A sender idle for a while starts afresh; one that is only late
	// because a sleep overshot keeps its place, so the rate is exact.
	if now.Sub(p.next) > 3*time.Millisecond {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(int64(n) * int64(time.Second) / p.rate))
	if d := p.next.Sub(now); d > time.Millisecond {
		time.Sleep(d)
	}
}

func newFakeConn(c net.Conn, local, peer string, rate int64, a *air) *fakeConn {
	return &fakeConn{
		ctx: context.Background(), c: c, local: ble.NewAddr(local), peer: ble.NewAddr(peer),
		rxMTU: ble.DefaultMTU, txMTU: ble.DefaultMTU, pace: pacer{rate: rate}, air: a,
		disc: make(chan struct{}),
	}
}

func (f *fakeConn) Read(b []byte) (int, error) {
	if _, err := io.ReadFull(f.c, f.hdr[:]); err != nil {
		f.Close()
		return 0, io.EOF
	}
	n := int(binary.BigEndian.Uint16(f.hdr[:]))
	p := make([]byte, n)
	if _, err := io.ReadFull(f.c, p); err != nil {
		f.Close()
		return 0, io.EOF
	}
	return copy(b, p), nil
}

func (f *fakeConn) Write(b []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.air.cutAfter > 0 && f.air.sent.Add(int64(len(b))) > f.air.cutAfter {
		f.air.cut()
		return 0, io.ErrClosedPipe
	}
	if len(b) >= 3 && (b[0] == 0x1b || b[0] == 0x52) { // notification, write command
		if v := int64(len(b) - 3); v > f.air.maxValue.Load() {
			f.air.maxValue.Store(v)
		}
	}
	f.air.pdu[f.end].Add(int64(len(b)))
	f.pace.wait(len(b))
	f.wbuf = binary.BigEndian.AppendUint16(f.wbuf[:0], uint16(len(b)))
	f.wbuf = append(f.wbuf, b...)
	if _, err := f.c.Write(f.wbuf); err != nil {
		f.Close()
		return 0, io.ErrClosedPipe
	}
	return len(b), nil
}

func (f *fakeConn) Close() error {
	f.once.Do(func() {
		f.c.Close()
		close(f.disc)
	})
	return nil
}

func (f *fakeConn) Context() context.Context       { return f.ctx }
func (f *fakeConn) SetContext(ctx context.Context) { f.ctx = ctx }
func (f *fakeConn) LocalAddr() ble.Addr            { return f.local }
func (f *fakeConn) RemoteAddr() ble.Addr           { return f.peer }
func (f *fakeConn) ReadRSSI() int                  { return -50 }
func (f *fakeConn) Disconnected() <-chan struct{}  { return f.disc }
func (f *fakeConn) RxMTU() int                     { f.mtu.Lock(); defer f.mtu.Unlock(); return f.rxMTU }
func (f *fakeConn) SetRxMTU(m int)                 { f.mtu.Lock(); defer f.mtu.Unlock(); f.rxMTU = m }
func (f *fakeConn) TxMTU() int                     { f.mtu.Lock(); defer f.mtu.Unlock(); return f.txMTU }
func (f *fakeConn) SetTxMTU(m int)                 { f.mtu.Lock(); defer f.mtu.Unlock(); f.txMTU = m }

var _ ble.Conn = (*fakeConn)(nil)

// dial connects a central to svc over an emulated radio: go-ble's ATT
// server runs svc on one end, its GATT client on the other. It returns
// the GATT client, for tests that misbehave as a central.
func (r radio) dial(t testing.TB, svc *Service) (*gatt.Client, *air) {
	t.Helper()
	pa, pb := net.Pipe()
	a := &air{cutAfter: r.CutAfter}
	cc := newFakeConn(pa, "c0:00:00:00:00:01", "p0:00:00:00:00:02", r.Rate, a)
	pc := newFakeConn(pb, "p0:00:00:00:00:02", "c0:00:00:00:00:01", r.Rate, a)
	a.ends = [2]*fakeConn{cc, pc}
	pc.end = 1
	pc.SetRxMTU(min(r.MTU, ble.MaxMTU))
	srv, err := gatt.NewServerWithName("ferry-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddService(svc.GATT()); err != nil {
		t.Fatal(err)
	}
	as, err := att.NewServer(srv.DB(), pc)
	if err != nil {
		t.Fatal(err)
	}
	go as.Loop()
	cl, err := gatt.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.cut)
	return cl, a
}

// connect connects a central to svc and returns both ends' links.
func (r radio) connect(t testing.TB, svc *Service) (central, peripheral *Link) {
	t.Helper()
	cl, _ := r.dial(t, svc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lc, _, err := Connect(ctx, cl, CentralOptions{MTU: r.MTU, Rate: r.Rate})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := svc.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close(); lp.Close() })
	return lc, lp
}

var _ carriers.Link = (*Link)(nil)
