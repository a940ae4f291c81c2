package lora_test

import (
	"bytes"
	"flag"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"ferry/lora"
	"ferry/lora/emulator"
)

// TestGoodput is the goodput benchmark of docs/lora.md. It runs only
// with -bench (synctest needs a *testing.T, so it is a test):
//
//	go test ./lora -run Goodput -bench . -v
//
// SF9/BW125, EU868 1 % duty cycle, 10–50 KB, at 0 %, 10 % random and
// 30 % bursty frame loss, on the virtual clock. Efficiency is the
// airtime the data alone would need in full 251-byte frames divided by
// the airtime both ends used (DATA, OFFER, ACK, resends): under a duty
// cycle, time is airtime ÷ 1 %, so this is the share of the
// airtime-limited capacity reached.
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
		for _, size := range []int{10_000, 30_000, 50_000} {
			t.Run(fmt.Sprintf("%s/%dKB", l.name, size/1000), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					e := newEnds(l.mk(), lora.EU868)
					defer e.Close()
					e.retries = 50
					data := make([]byte, size)
					fill(data, uint64(size))
					start := time.Now()
					got, serr, rerr := e.transfer(t.Context(), t.TempDir(), 1, data)
					took := time.Since(start)
					if serr != nil || rerr != nil || !bytes.Equal(got, data) {
						t.Fatalf("send %v, receive %v", serr, rerr)
					}
					ideal := time.Duration(float64(size) / float64(lora.MaxFrame) * float64(lora.TimeOnAir(sf9, lora.MaxFrame)))
					used := e.sent.Airtime + e.recv.Airtime
					rate := float64(size) / took.Seconds()
					t.Logf("%s %d B: %v virtual, %.2f B/s, airtime data %v / used %v (ACK %v) = %.1f %% of capacity; %d DATA (%d resent), %d OFFER, %d ACK",
						l.name, size, took.Round(time.Second), rate, ideal.Round(time.Millisecond), used.Round(time.Millisecond),
						e.recv.Airtime.Round(time.Millisecond), 100*float64(ideal)/float64(used),
						e.sent.DataSent, e.sent.DataSent-(size+lora.FragmentSize-1)/lora.FragmentSize, e.sent.Offers, e.recv.Acks)
				})
			})
		}
	}
}
