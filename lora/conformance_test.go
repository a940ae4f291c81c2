package lora_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/lora"
	"ferry/lora/emulator"
	"ferry/node"
)

// TestConformance runs the carriers conformance suite over Links on
// emulated radios: SF7/500 kHz in the 10 % sub-band with 5 % random frame
// loss, each case in a synctest bubble (hours of airtime on the virtual
// clock), its data sizes ÷ 32 (64 KB for the resume, 32 KB for the stall)
// and its time bounds × 600 (a turn takes seconds: a session gets 10 h,
// a stalled peer is noticed within 100 min).
func TestConformance(t *testing.T) {
	p := lora.Params{SF: 7, Bandwidth: 500000, CR: 1, Frequency: 869_525_000}
	carriertest.Run(t, carriertest.Harness{
		Bubble: synctest.Test,
		Shrink: 32,
		Slow:   600,
		Connect: func(t testing.TB, a, b *node.Node) (carriers.Link, carriers.Link) {
			air := emulator.New(emulator.Config{Loss: emulator.Random{P: 0.05}, Seed: 11})
			ma, ra := air.Modem("a", p)
			mb, rb := air.Modem("b", p)
			start := time.Now()
			t.Cleanup(func() {
				ma.Close()
				mb.Close()
				t.Logf("on air: %+v frames, %v virtual", air.Counts(), time.Since(start).Round(time.Second))
				checkDutyCycle(t, lora.EU868Sub10, ra, rb)
			})
			la := lora.NewLink(lora.LinkConfig{Modem: ma, Params: p, Budget: lora.NewBudget(lora.EU868Sub10), Initiator: true, Remote: b.Name()})
			lb := lora.NewLink(lora.LinkConfig{Modem: mb, Params: p, Budget: lora.NewBudget(lora.EU868Sub10), Remote: a.Name()})
			return la, lb
		},
	})
}

// TestSyncOverLoRa runs carriers.Sync between two real nodes over Links
// on emulated radios (SF7/500 kHz, 10 % sub-band, 10 % random loss), on
// the virtual clock (carriertest.SyncPair allows a session 60 s): messages go both ways and receipts come back.
func TestSyncOverLoRa(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
		carriertest.Introduce(t, a, b)
		carriertest.Send(t, a, b, "hello river")
		carriertest.Send(t, b, a, "hello north")
		sf9 := lora.Params{SF: 7, Bandwidth: 500000, CR: 1, Frequency: 869_525_000}
		air := emulator.New(emulator.Config{Loss: emulator.Random{P: 0.10}, Seed: 1})
		ma, _ := air.Modem("a", sf9)
		mb, _ := air.Modem("b", sf9)
		defer ma.Close()
		defer mb.Close()
		sync := func() (carriertest.Result, carriertest.Result) {
			la := lora.NewLink(lora.LinkConfig{Modem: ma, Params: sf9, Budget: lora.NewBudget(lora.EU868Sub10), Initiator: true})
			lb := lora.NewLink(lora.LinkConfig{Modem: mb, Params: sf9, Budget: lora.NewBudget(lora.EU868Sub10)})
			o := carriers.Options{Idle: 10 * time.Minute}
			ra, rb := carriertest.SyncPair(t, a, b, la, lb, o, o)
			sa, sb := la.Stats(), lb.Stats()
			t.Logf("session bytes %d → %d encoded (north), %d → %d (river)", sa.SessionBytes, sa.EncodedBytes, sb.SessionBytes, sb.EncodedBytes)
			return ra, rb
		}
		start := time.Now()
		ra, rb := sync()
		if ra.Err != nil || rb.Err != nil {
			t.Fatalf("sync: %v / %v", ra.Err, rb.Err)
		}
		t.Logf("first sync: %v virtual; north sent %d B, river sent %d B", time.Since(start).Round(time.Second), ra.Report.Sent.Bytes, rb.Report.Sent.Bytes)
		// A second contact carries the receipts back. Frames left on the
		// air by the first link's shutdown are drained first: a Link
		// assumes a fresh channel (see docs/lora.md).
		time.Sleep(time.Minute)
		drain(t, ma, mb)
		ra, rb = sync()
		if ra.Err != nil || rb.Err != nil {
			t.Fatalf("second sync: %v / %v", ra.Err, rb.Err)
		}
		north, river := carriertest.States(t, a), carriertest.States(t, b)
		if north["hello river"] != "delivered" || north["hello north"] != "received" ||
			river["hello north"] != "delivered" || river["hello river"] != "received" {
			t.Fatalf("north %v, river %v", north, river)
		}
	})
}

func drain(t *testing.T, ms ...lora.Modem) {
	for _, m := range ms {
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

// checkDutyCycle fails t if a radio used more airtime in some sliding
// window than the region allows, or sent a frame over its dwell limit.
func checkDutyCycle(t testing.TB, reg lora.Region, radios ...*emulator.Radio) {
	t.Helper()
	for _, r := range radios {
		busiest, longest := r.BusiestWindow(reg.Window)
		if reg.DutyCycle > 0 && busiest > reg.Budget() {
			t.Errorf("radio %s: %v on air in one sliding %v, over %s's %v", r.Name, busiest, reg.Window, reg.Name, reg.Budget())
		}
		if reg.Dwell > 0 && longest > reg.Dwell {
			t.Errorf("radio %s: a frame of %v on air, over %s's dwell of %v", r.Name, longest, reg.Name, reg.Dwell)
		}
	}
}
