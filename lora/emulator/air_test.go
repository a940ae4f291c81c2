package emulator_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"ferry/lora"
	"ferry/lora/emulator"
)

var sf9 = lora.Params{SF: 9, Bandwidth: 125000, CR: 1, Frequency: 868_100_000}

func TestCollisionAndHalfDuplex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		air := emulator.New(emulator.Config{})
		a, _ := air.Modem("a", sf9)
		b, _ := air.Modem("b", sf9)
		c, _ := air.Modem("c", sf9)
		defer a.Close()
		defer b.Close()
		defer c.Close()
		ctx := context.Background()
		a.Send(ctx, make([]byte, 100))
		time.Sleep(10 * time.Millisecond)
		b.Send(ctx, make([]byte, 100)) // overlaps a's frame
		time.Sleep(5 * time.Second)
		if c := air.Counts(); c.Collided != 2 || c.Delivered != 0 {
			t.Fatalf("%+v", c)
		}
		// c alone: a and b both hear it.
		c.Send(ctx, []byte("one"))
		time.Sleep(time.Second)
		if c := air.Counts(); c.Delivered != 2 {
			t.Fatalf("%+v", c)
		}
		synctest.Wait()
	})
}

func TestLossModels(t *testing.T) {
	for _, tc := range []struct {
		name string
		loss emulator.LossModel
		want float64
	}{
		{"random10", emulator.Random{P: 0.10}, 0.10},
		{"bursty30", emulator.Bursty(0.30, 4), 0.30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				air := emulator.New(emulator.Config{Loss: tc.loss, Seed: 7})
				a, _ := air.Modem("a", sf9)
				b, rb := air.Modem("b", sf9)
				defer a.Close()
				defer b.Close()
				const n = 2000
				got := 0
				for range n {
					a.Send(context.Background(), []byte("x"))
					time.Sleep(time.Second)
					select {
					case <-rb.Received():
						got++
					default:
					}
				}
				rate := 1 - float64(got)/n
				if rate < tc.want-0.04 || rate > tc.want+0.04 {
					t.Fatalf("loss %.3f, want %.2f", rate, tc.want)
				}
			})
		})
	}
}

func TestAirtimeLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		air := emulator.New(emulator.Config{})
		a, ra := air.Modem("a", sf9)
		defer a.Close()
		ra.SetAirtimeLock(0, 0.01) // a 1 % short-term lock (15 s) could never fit a 1.2 s frame
		start := time.Now()
		for range 60 {
			if err := a.Send(context.Background(), make([]byte, 251)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; ra.Airtime() < 60*lora.TimeOnAir(sf9, 251) && i < 20000; i++ {
			time.Sleep(time.Second)
		}
		took := time.Since(start)
		// 60 × 1.23 s = 74 s of air at 1 % needs at least ~2 h of wall time.
		if budget := time.Duration(float64(took) * 0.01); ra.Airtime() > budget+36*time.Second {
			t.Fatalf("%v on air in %v", ra.Airtime(), took)
		}
		t.Logf("%v on air in %v (virtual)", ra.Airtime(), took)
	})
}
