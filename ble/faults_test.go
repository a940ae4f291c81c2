package ble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux/gatt"

	"ferry/carriers"
	"ferry/carriers/carriertest"
)

// TestNoValueOverMTU sends a big bundle each way and checks that no
// notification or write carried more than MTU − 3 bytes (go-ble would
// cut a longer notification silently).
func TestNoValueOverMTU(t *testing.T) {
	for _, mtu := range mtus {
		t.Run(fmt.Sprintf("MTU%d", mtu), func(t *testing.T) {
			a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
			carriertest.Introduce(t, a, b)
			rng := mrand.New(mrand.NewPCG(3, 4))
			carriertest.Send(t, a, b, randomText(rng, 30_000))
			carriertest.Send(t, b, a, randomText(rng, 30_000))
			r := radio{MTU: mtu}
			svc := NewService(b.ID(), ServiceOptions{})
			cl, air := r.dial(t, svc)
			la, _, err := Connect(t.Context(), cl, CentralOptions{MTU: mtu})
			if err != nil {
				t.Fatal(err)
			}
			lb, err := svc.Accept(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			ra, rb := carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{})
			if ra.Err != nil || rb.Err != nil {
				t.Fatalf("sync: %v / %v", ra.Err, rb.Err)
			}
			att := int64(min(mtu, ble.MaxMTU))
			if got := air.maxValue.Load(); got != att-3 {
				t.Errorf("longest value %d bytes at ATT MTU %d, want exactly %d", got, att, att-3)
			}
		})
	}
}

// TestResumeAfterDisconnects cuts the radio at random points, session
// after session, until a 600 KB bundle is across: each session resumes
// where the last one stopped.
func TestResumeAfterDisconnects(t *testing.T) {
	a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, a, b)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 10 {
		carriertest.Send(t, a, b, randomText(rng, 60_000))
	}
	var cuts, resumed int
	var moved int64
	for session := 0; ; session++ {
		if session == 40 {
			t.Fatalf("not across after %d sessions", session)
		}
		mtu := mtus[session%len(mtus)]
		r := radio{MTU: mtu}
		if session < 6 {
			r.CutAfter = 5_000 + rng.Int64N(150_000)
		}
		la, lb := r.connect(t, NewService(b.ID(), ServiceOptions{}))
		opts := carriers.Options{Idle: 3 * time.Second}
		ra, rb := carriertest.SyncPair(t, a, b, la, lb, opts, opts)
		moved += rb.Report.Received.Bytes
		resumed += rb.Report.Received.Resumed
		if ra.Err != nil || rb.Err != nil {
			if r.CutAfter == 0 {
				t.Fatalf("session %d without a cut: %v / %v", session, ra.Err, rb.Err)
			}
			cuts++
			continue
		}
		if r.CutAfter == 0 {
			break
		}
	}
	st := carriertest.States(t, b)
	if len(st) != 10 {
		t.Fatalf("river holds %d of 10 messages", len(st))
	}
	if cuts == 0 || resumed == 0 {
		t.Errorf("%d sessions cut, %d transfers resumed: the test cut nothing mid-bundle", cuts, resumed)
	}
	t.Logf("%d cuts, %d resumed transfers, %d bundle bytes moved", cuts, resumed, moved)
}

// randomText returns n bytes of text that compresses little.
func randomText(rng *mrand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ."
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// misbehave connects a raw go-ble client to a fresh service, writes what
// bad writes, and returns the peripheral link's error and the CLOSE
// reason the client was notified. bad may wait, with credit, until the
// peripheral has granted n chunks in all (its window of 8 and every
// CREDIT since): a central that writes past the window is dropped for
// that, whatever else it does wrong.
func misbehave(t *testing.T, mtu, clientRx int, read bool, bad func(cl *gatt.Client, rx *ble.Characteristic, credit func(n int) error) error) (error, string) {
	t.Helper()
	const window = 8
	svc := NewService(carriertest.NewNode(t, "river").ID(), ServiceOptions{Window: window})
	cl, _ := radio{MTU: mtu}.dial(t, svc)
	if _, err := cl.ExchangeMTU(clientRx); err != nil {
		t.Fatal(err)
	}
	rx, tx, _, err := discover(cl)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	granted := window
	told := make(chan string, 1)   // the CLOSE reason
	more := make(chan struct{}, 1) // a CREDIT arrived
	if err := cl.Subscribe(tx, false, func(b []byte) {
		switch {
		case len(b) > 0 && b[0] == chunkClose:
			select {
			case told <- string(b[1:]):
			default:
			}
		case len(b) > 1 && b[0] == chunkCredit:
			if n, k := binary.Uvarint(b[1:]); k > 0 {
				mu.Lock()
				granted += int(n)
				mu.Unlock()
				select {
				case more <- struct{}{}:
				default:
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	credit := func(n int) error {
		// The deadline only bounds a hang: the peripheral grants as soon
		// as its reader has taken chunks.
		deadline := time.After(time.Minute)
		for {
			mu.Lock()
			g := granted
			mu.Unlock()
			if g >= n {
				return nil
			}
			select {
			case <-more:
			case <-deadline:
				return fmt.Errorf("granted %d chunks in a minute, waiting for %d", g, n)
			}
		}
	}
	lp, err := svc.Accept(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	recv := func() {
		for {
			if _, err := lp.Recv(); err != nil {
				done <- err
				return
			}
		}
	}
	if read {
		go recv()
	}
	if err := bad(cl, rx, credit); err != nil {
		t.Fatal(err)
	}
	if !read {
		go recv()
	}
	// Generous deadlines: they only bound a hang on a loaded machine.
	var rerr error
	select {
	case rerr = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the peripheral did not drop the central")
	}
	select {
	case <-cl.Disconnected():
	case <-time.After(time.Minute):
		t.Error("the peripheral did not hang up")
	}
	// go-ble hands notifications to the handler asynchronously, after
	// the hang-up perhaps.
	select {
	case r := <-told:
		return rerr, r
	case <-time.After(time.Minute):
		return rerr, ""
	}
}

func TestBadCentralDropped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mtu, crx int
		read     bool
		bad      func(cl *gatt.Client, rx *ble.Characteristic, credit func(int) error) error
		want     string
	}{
		{"Garbage", 185, 185, false, func(cl *gatt.Client, rx *ble.Characteristic, _ func(int) error) error {
			return cl.WriteCharacteristic(rx, []byte{0x9a, 1, 2, 3}, true)
		}, "unknown chunk type 0x9a"},
		{"OversizeChunk", 185, 100, false, func(cl *gatt.Client, rx *ble.Characteristic, _ func(int) error) error {
			// The central said it takes 100-byte PDUs, so chunks are 97
			// bytes at most; go-ble lets it write 182.
			return cl.WriteCharacteristic(rx, bytes.Repeat([]byte{chunkLast}, 150), true)
		}, "a chunk of 150 bytes, over the MTU − 3 of 97"},
		{"OutOfSequence", 185, 185, false, func(cl *gatt.Client, rx *ble.Characteristic, _ func(int) error) error {
			return cl.WriteCharacteristic(rx, []byte{chunkLast | 5, 1}, true)
		}, "chunk 5 where 0 was due"},
		{"Overrun", 185, 185, false, func(cl *gatt.Client, rx *ble.Characteristic, _ func(int) error) error {
			for i := range 20 { // the window is 8, and nobody reads
				if cl.WriteCharacteristic(rx, []byte{byte(i) & seqMask, 1, 2}, true) != nil {
					break // dropped and hung up
				}
			}
			return nil
		}, "more chunks than the 8 granted"},
		{"FrameOverMTU", 517, 515, true, func(cl *gatt.Client, rx *ble.Characteristic, credit func(int) error) error {
			// Nine chunks make a frame over FrameMTU, one more than the
			// window: wait for the credit the reader earns, or the drop
			// would be for the overrun instead.
			chunk := make([]byte, 512)
			for i := range FrameMTU/511 + 1 {
				if err := credit(i + 1); err != nil {
					return err
				}
				chunk[0] = byte(i) & seqMask
				if cl.WriteCharacteristic(rx, chunk, true) != nil {
					break
				}
			}
			return nil
		}, "a frame over 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err, reason := misbehave(t, tc.mtu, tc.crx, tc.read, tc.bad)
			var drop *DropError
			if !errors.As(err, &drop) || !strings.Contains(drop.Reason, tc.want) {
				t.Errorf("peripheral: %v, want a drop for %q", err, tc.want)
			}
			if !errors.Is(err, carriers.ErrProtocol) {
				t.Errorf("peripheral: %v does not wrap carriers.ErrProtocol", err)
			}
			if !strings.Contains(reason, tc.want) {
				t.Errorf("central told %q, want %q", reason, tc.want)
			}
		})
	}
}

// TestPeerToldWhy checks that the central's link reports the reason the
// peripheral gave.
func TestPeerToldWhy(t *testing.T) {
	svc := NewService(carriertest.NewNode(t, "river").ID(), ServiceOptions{})
	la, lb := radio{MTU: 185}.connect(t, svc)
	lb.drop("testing")
	_, err := la.Recv()
	var pc *PeerClosedError
	if !errors.As(err, &pc) || pc.Reason != "testing" {
		t.Errorf("central: %v", err)
	}
}

func TestOrderlyClose(t *testing.T) {
	svc := NewService(carriertest.NewNode(t, "river").ID(), ServiceOptions{})
	la, lb := radio{MTU: 23}.connect(t, svc)
	if err := la.Send([]byte("last words, longer than one chunk of twenty")); err != nil {
		t.Fatal(err)
	}
	la.Close()
	f, err := lb.Recv()
	if err != nil || string(f) != "last words, longer than one chunk of twenty" {
		t.Fatalf("recv %q, %v", f, err)
	}
	if _, err := lb.Recv(); err != io.EOF {
		t.Errorf("after the close: %v, want io.EOF", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_ = ctx
}
