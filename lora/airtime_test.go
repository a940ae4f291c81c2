package lora

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

func TestTimeOnAir(t *testing.T) {
	cases := []struct {
		sf, bw, cr, n int
		ldro          LDRO
		implicit      bool
		want          float64 // ms, as published (bench/README.md, Semtech calculator)
	}{
		{7, 125000, 1, 255, LDROAuto, false, 399.6},
		{9, 125000, 1, 255, LDROAuto, false, 1250.3},
		{12, 125000, 1, 255, LDROAuto, false, 9019.4},
		{12, 125000, 1, 64, LDROAuto, false, 2793.5},
		// TTN airtime calculator, a 13-byte LoRaWAN frame:
		{7, 125000, 1, 13, LDROAuto, false, 46.3},
		{8, 125000, 1, 13, LDROAuto, false, 82.4},
		{9, 125000, 1, 13, LDROAuto, false, 164.9},
		{10, 125000, 1, 13, LDROAuto, false, 288.8},
		{7, 125000, 1, 51, LDROAuto, false, 102.7},
		{12, 125000, 1, 51, LDROAuto, false, 2465.8}, // LDRO on by itself
		// By hand from the formula:
		{12, 125000, 1, 51, LDROOff, false, 2138.1},
		{7, 125000, 4, 255, LDROAuto, false, 626.9},
		{7, 250000, 1, 255, LDROAuto, false, 199.8},
		{7, 125000, 1, 13, LDROAuto, true, 41.2},
	}
	for _, c := range cases {
		p := Params{SF: c.sf, Bandwidth: c.bw, CR: c.cr, LDRO: c.ldro, Implicit: c.implicit}
		got := float64(TimeOnAir(p, c.n)) / 1e6
		if got < c.want-0.05 || got > c.want+0.05 {
			t.Errorf("SF%d BW%d CR4/%d %d B ldro=%d ih=%v: %.2f ms, want %.1f", c.sf, c.bw, c.cr+4, c.n, c.ldro, c.implicit, got, c.want)
		}
	}
}

func TestUS915Dwell(t *testing.T) {
	// At least LoRaWAN's US915 maximum PHY payloads (19, 61, 133, 250 B at DR0..DR3).
	want := map[int]int{7: 251, 8: 138, 9: 66, 10: 24, 11: 0, 12: 0}
	for sf := 7; sf <= 12; sf++ {
		p := Params{SF: sf, Bandwidth: 125000, CR: 1}
		n := US915.MaxPayload(p)
		if n != want[sf] {
			t.Errorf("SF%d: max payload %d, want %d", sf, n, want[sf])
		}
		if n > 0 {
			if d := TimeOnAir(p, n); d > 400*time.Millisecond {
				t.Errorf("SF%d: %d B take %v", sf, n, d)
			}
			if err := US915.Check(p, n+1); n < MaxFrame && err == nil {
				t.Errorf("SF%d: %d B allowed", sf, n+1)
			}
		}
	}
}

// maxWindow returns the most airtime of any window of length w in txs
// (sorted), checked at each transmission's end, where the maximum lies.
func maxWindow(txs []tx, w time.Duration) time.Duration {
	var best time.Duration
	for _, e := range txs {
		var sum time.Duration
		for _, t := range txs {
			lo, hi := e.end.Add(-w), e.end
			s, f := later(t.start, lo), t.end
			if f.After(hi) {
				f = hi
			}
			if f.After(s) {
				sum += f.Sub(s)
			}
		}
		best = max(best, sum)
	}
	return best
}

func TestBudgetSlidingHour(t *testing.T) {
	for _, r := range []Region{EU868, EU868Sub10} {
		t.Run(r.Name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := NewBudget(r)
				rng := rand.New(rand.NewPCG(1, 2))
				var txs []tx
				start := time.Now()
				for time.Since(start) < 5*time.Hour {
					p := Params{SF: 7 + rng.IntN(6), Bandwidth: 125000, CR: 1}
					d := TimeOnAir(p, 1+rng.IntN(MaxFrame))
					s, err := b.Acquire(context.Background(), d)
					if err != nil {
						t.Fatal(err)
					}
					txs = append(txs, tx{s, s.Add(d)})
					time.Sleep(d) // on air
					if rng.IntN(50) == 0 {
						time.Sleep(time.Duration(rng.IntN(600)) * time.Second)
					}
				}
				got := maxWindow(txs, time.Hour)
				if got > r.Budget() {
					t.Fatalf("a sliding hour holds %v on air, budget %v", got, r.Budget())
				}
				if got < r.Budget()*9/10 {
					t.Errorf("busiest hour used only %v of %v", got, r.Budget())
				}
				t.Logf("%d frames in 5 h, busiest hour %v of %v", len(txs), got, r.Budget())
			})
		})
	}
}

func TestBudgetRefusesHugeFrame(t *testing.T) {
	b := NewBudget(Region{DutyCycle: 0.001, Window: time.Second})
	if _, err := b.Earliest(time.Now(), 2*time.Millisecond); err == nil {
		t.Fatal("a frame over the whole budget was allowed")
	}
}
