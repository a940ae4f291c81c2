package lora_test

import (
	"bytes"
	"flag"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"ferry/lora"
	"ferry/lora/emulator"
)

// goodputSeeds is how many channel realizations each case averages: one
// run of a bursty channel over 41 fragments is mostly luck.
const goodputSeeds = 10

// TestGoodput is the goodput benchmark of docs/lora.md. It runs only
// with -bench (synctest needs a *testing.T, so it is a test):
//
//	go test ./lora -run Goodput -bench . -v
//
// SF9/BW125, EU868 1 % duty cycle, 10–50 KB, at 0 %, 10 % random and
// 30 % bursty frame loss, on the virtual clock, each case over 10 seeds
// of the loss model. Efficiency is the airtime the data alone would need
// in full 251-byte frames divided by the airtime both ends used (DATA,
// OFFER, ACK, resends): under a duty cycle, time is airtime ÷ 1 %, so
// this is the share of the airtime-limited capacity reached. Overhead is
// the header and ACK airtime over the airtime of all frames.
func TestGoodput(t *testing.T) {
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		t.Skip("a benchmark: run with -bench .")
	}
	losses := []struct {
		name string
		mk   func() emulator.LossModel
	}{
		{"loss0", func() emulator.LossModel { return nil }},
		{"random10", func() emulator.LossModel { return emulator.Random{P: 0.10} }},
		{"bursty30", func() emulator.LossModel { return emulator.Bursty(0.30, 4) }},
	}
	for _, l := range losses {
		for _, size := range []int{10_000, 20_000, 30_000, 40_000, 50_000} {
			t.Run(fmt.Sprintf("%s/%dKB", l.name, size/1000), func(t *testing.T) {
				var effs, overheads, lossSeen []float64
				var took time.Duration
				for seed := range uint64(goodputSeeds) {
					synctest.Test(t, func(t *testing.T) {
						e := newEndsSeed(l.mk(), lora.EU868, seed+1)
						defer e.Close()
						e.retries, e.answer = 50, true
						data := make([]byte, size)
						fill(data, uint64(size))
						start := time.Now()
						got, serr, rerr := e.transfer(t.Context(), t.TempDir(), 1, data)
						took += time.Since(start)
						if serr != nil || rerr != nil || !bytes.Equal(got, data) {
							t.Fatalf("seed %d: send %v, receive %v", seed+1, serr, rerr)
						}
						ideal := time.Duration(float64(size) / float64(lora.MaxFrame) * float64(lora.TimeOnAir(sf9, lora.MaxFrame)))
						used := e.sent.Airtime + e.recv.Airtime
						// Header airtime: each DATA frame's 7 bytes, as the
						// difference with a frame without them.
						hdr := time.Duration(e.sent.DataSent) * (lora.TimeOnAir(sf9, lora.MaxFrame) - lora.TimeOnAir(sf9, lora.MaxFrame-lora.HeaderSize))
						effs = append(effs, 100*float64(ideal)/float64(used))
						overheads = append(overheads, 100*float64(hdr+e.recv.Airtime)/float64(used))
						checkDutyCycle(t, lora.EU868, e.ra, e.rb)
						c := e.air.Counts()
						lossSeen = append(lossSeen, 100*float64(c.Lost)/float64(c.Lost+c.Delivered))
					})
				}
				if mean(overheads) > 5 {
					t.Errorf("header and ACK airtime %.1f %% of all airtime, goal ≤ 5 %%", mean(overheads))
				}
				t.Logf("%s %d B: capacity %.1f %% [%.1f–%.1f], header+ACK %.1f %% of airtime, loss seen %.1f %% [%.1f–%.1f], %v virtual per transfer",
					l.name, size, mean(effs), slices.Min(effs), slices.Max(effs), mean(overheads),
					mean(lossSeen), slices.Min(lossSeen), slices.Max(lossSeen), (took / goodputSeeds).Round(time.Minute))
			})
		}
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
