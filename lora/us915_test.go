package lora_test

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/lora"
	"ferry/lora/emulator"
)

// TestUS915Frames: a transfer and a whole session over US915 at
// SF7/125 kHz, the slowest setting where a full frame fits the 400 ms
// dwell limit (399.6 ms): every frame either end puts on air stays
// within it, and settings where a full frame would not are refused.
func TestUS915Frames(t *testing.T) {
	p := lora.Params{SF: 7, Bandwidth: 125000, CR: 1, Frequency: 915_000_000}
	if err := lora.US915.Check(p, lora.MaxFrame); err != nil {
		t.Fatal(err)
	}
	slow := p
	slow.SF = 8
	if err := lora.US915.Check(slow, lora.MaxFrame); err == nil {
		t.Fatal("SF8 full frames accepted under US915's dwell limit")
	}
	synctest.Test(t, func(t *testing.T) {
		air := emulator.New(emulator.Config{Loss: emulator.Random{P: 0.05}, Seed: 9})
		ma, ra := air.Modem("a", p)
		mb, rb := air.Modem("b", p)
		defer ma.Close()
		defer mb.Close()
		data := make([]byte, 20_000)
		fill(data, 915)
		var got []byte
		var rerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, rerr = lora.NewReceiver(t.TempDir(), lora.TransferConfig{Modem: mb, Params: p}).Receive(t.Context())
		}()
		serr := lora.Send(t.Context(), lora.TransferConfig{Modem: ma, Params: p}, 1, data)
		<-done
		if serr != nil || rerr != nil || !bytes.Equal(got, data) {
			t.Fatalf("transfer: send %v, receive %v", serr, rerr)
		}

		a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
		carriertest.Introduce(t, a, b)
		carriertest.Send(t, a, b, "across the border")
		time.Sleep(time.Minute)
		la := lora.NewLink(lora.LinkConfig{Modem: ma, Params: p, Initiator: true})
		lb := lora.NewLink(lora.LinkConfig{Modem: mb, Params: p})
		o := carriers.Options{Idle: time.Hour}
		if r1, r2 := carriertest.SyncPair(t, a, b, la, lb, o, o); r1.Err != nil || r2.Err != nil {
			t.Fatalf("session: %v / %v", r1.Err, r2.Err)
		}
		if st := carriertest.States(t, a)["across the border"]; st != "delivered" {
			t.Errorf("north's message is %q, want delivered", st)
		}
		checkDutyCycle(t, lora.US915, ra, rb)
		_, longest := ra.BusiestWindow(time.Hour)
		t.Logf("longest frame on air: %v", longest)
	})
}
