package lora_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"ferry/lora"
	"ferry/lora/emulator"
)

var sf9 = lora.Params{SF: 9, Bandwidth: 125000, CR: 1, Frequency: 869_525_000}

type ends struct {
	air        *emulator.Air
	ra, rb     *emulator.Radio
	a, b       lora.Modem
	ba, bb     *lora.Budget
	sent, recv lora.TransferStats
	burst      int
	retries    int
	answer     bool // the receiver keeps answering after it completes
}

func newEnds(loss emulator.LossModel, reg lora.Region) *ends {
	return newEndsSeed(loss, reg, 3)
}

func newEndsSeed(loss emulator.LossModel, reg lora.Region, seed uint64) *ends {
	e := &ends{air: emulator.New(emulator.Config{Loss: loss, Seed: seed})}
	e.a, e.ra = e.air.Modem("a", sf9)
	e.b, e.rb = e.air.Modem("b", sf9)
	e.ba, e.bb = lora.NewBudget(reg), lora.NewBudget(reg)
	return e
}

func (e *ends) Close() { e.a.Close(); e.b.Close() }

func (e *ends) cfgs() (lora.TransferConfig, lora.TransferConfig) {
	return lora.TransferConfig{Modem: e.a, Params: sf9, Budget: e.ba, Stats: &e.sent, Burst: e.burst, Retries: e.retries},
		lora.TransferConfig{Modem: e.b, Params: sf9, Budget: e.bb, Stats: &e.recv, Burst: e.burst, Retries: e.retries}
}

// transfer runs one attempt; it returns the data if the receiver completed.
func (e *ends) transfer(ctx context.Context, dir string, id uint32, data []byte) ([]byte, error, error) {
	sc, rc := e.cfgs()
	var got []byte
	var rerr error
	done := make(chan struct{})
	sctx, sent := context.WithCancel(ctx)
	defer sent()
	go func() {
		defer close(done)
		r := lora.NewReceiver(dir, rc)
		got, rerr = r.Receive(ctx)
		// A node keeps listening: a sender that missed the last ACK
		// offers again and is answered from the .done marker.
		for e.answer && rerr == nil && sctx.Err() == nil {
			r.Receive(sctx)
		}
	}()
	serr := lora.Send(ctx, sc, id, data)
	sent()
	<-done
	return got, serr, rerr
}

func TestTransferClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnds(nil, lora.EU868Sub10)
		defer e.Close()
		data := make([]byte, 30_000)
		fill(data, 1)
		got, serr, rerr := e.transfer(t.Context(), t.TempDir(), 7, data)
		if serr != nil || rerr != nil || !bytes.Equal(got, data) {
			t.Fatalf("send %v, receive %v, %d bytes", serr, rerr, len(got))
		}
		n := (len(data) + lora.FragmentSize - 1) / lora.FragmentSize
		if e.sent.DataSent != n {
			t.Errorf("%d DATA frames for %d fragments", e.sent.DataSent, n)
		}
	})
}

// TestTransferCuts cuts the link 10 times at random moments during a
// 30 KB transfer: both ends stop and start again from the receiver's
// stored fragments. The transfer completes with the same SHA-256 and
// resends at most one burst per cut.
func TestTransferCuts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnds(nil, lora.EU868Sub10)
		defer e.Close()
		data := make([]byte, 30_000)
		fill(data, 2)
		dir := t.TempDir()
		rng := rand.New(rand.NewPCG(9, 9))
		const burst = 16
		e.burst = burst
		const cuts = 10
		var got []byte
		for i := 0; ; i++ {
			ctx, cancel := context.WithCancel(t.Context())
			if i < cuts {
				time.AfterFunc(time.Duration(5+rng.IntN(40))*time.Second, cancel)
			}
			g, serr, rerr := e.transfer(ctx, dir, 42, data)
			cancel()
			synctest.Wait()
			if g != nil {
				got = g
				break
			}
			if i >= cuts {
				t.Fatalf("after the cuts: send %v, receive %v", serr, rerr)
			}
			if !errors.Is(serr, context.Canceled) {
				t.Fatalf("cut %d: send %v", i, serr)
			}
			// Drain what the cut left in flight.
			time.Sleep(30 * time.Second)
			for _, m := range []lora.Modem{e.a, e.b} {
				for {
					ctx, c := context.WithTimeout(t.Context(), time.Millisecond)
					_, err := m.Recv(ctx)
					c()
					if err != nil {
						break
					}
				}
			}
		}
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatal("SHA-256 differs")
		}
		n := (len(data) + lora.FragmentSize - 1) / lora.FragmentSize
		resent := e.sent.DataSent - n
		t.Logf("%d fragments, %d DATA frames sent, %d resent over %d cuts (burst %d)", n, e.sent.DataSent, resent, cuts, burst)
		if resent > cuts*burst {
			t.Errorf("resent %d fragments over %d cuts", resent, cuts)
		}
	})
}

func TestTransferPeerGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnds(nil, lora.EU868Sub10)
		defer e.Close()
		sc, _ := e.cfgs()
		err := lora.Send(t.Context(), sc, 1, []byte("nobody listens"))
		if !errors.Is(err, lora.ErrNoPeer) {
			t.Fatalf("got %v", err)
		}
		t.Logf("status: %v", err)
	})
}

func TestFrameGolden(t *testing.T) {
	if lora.TypeOffer != 0x01 || lora.TypeData != 0x02 || lora.TypeAck != 0x03 || lora.FlagTurn != 0x80 ||
		lora.HeaderSize != 7 || lora.FragmentSize != 244 {
		t.Fatal("link wire constants changed")
	}
}

func fill(b []byte, seed uint64) {
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
}

// dropAck loses the receiver's ACKs that report n fragments held, once.
type dropAck struct {
	lora.Modem
	n       uint16
	dropped bool
}

func (d *dropAck) Send(ctx context.Context, f []byte) error {
	if !d.dropped && len(f) >= 7 && f[0]&0x7f == lora.TypeAck && uint16(f[5])<<8|uint16(f[6]) == d.n {
		d.dropped = true
		return nil
	}
	return d.Modem.Send(ctx, f)
}

// TestTransferLastAckLost: the receiver takes the data in, its final ACK
// is lost, the sender offers again and a later Receive answers it in
// full from the .done marker without returning the data twice.
func TestTransferLastAckLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnds(nil, lora.EU868Sub10)
		defer e.Close()
		data := make([]byte, 1000)
		fill(data, 3)
		n := uint16((len(data) + lora.FragmentSize - 1) / lora.FragmentSize)
		sc, rc := e.cfgs()
		drop := &dropAck{Modem: e.b, n: n}
		rc.Modem = drop
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		got := make(chan []byte, 2)
		go func() {
			r := lora.NewReceiver(dir, rc)
			for {
				d, err := r.Receive(ctx)
				if err != nil {
					return
				}
				got <- d
			}
		}()
		if err := lora.Send(t.Context(), sc, 9, data); err != nil {
			t.Fatalf("send: %v", err)
		}
		if d := <-got; !bytes.Equal(d, data) {
			t.Fatal("data differs")
		}
		select {
		case <-got:
			t.Fatal("the data was taken in twice")
		default:
		}
		if !drop.dropped {
			t.Fatal("the final ACK was not dropped")
		}
		cancel()
		synctest.Wait()
	})
}
