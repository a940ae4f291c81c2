package emulator_test

import (
	"testing"
	"time"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/lora"
	"ferry/lora/emulator"
)

// TestSyncOverPTY runs carriers.Sync between two real nodes over
// lora.Link on real drivers through real ttys (tarm/serial on the pty
// slaves), for each modem family, on the real clock at SF7/500 kHz:
// messages cross both ways and receipts come back on a second contact.
func TestSyncOverPTY(t *testing.T) {
	for _, proto := range []emulator.Protocol{emulator.RNode, emulator.RF95} {
		t.Run(string(proto), func(t *testing.T) {
			a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
			carriertest.Introduce(t, a, b)
			carriertest.Send(t, a, b, "hello river")
			carriertest.Send(t, b, a, "hello north")
			air := emulator.New(emulator.Config{})
			var ms []lora.Modem
			for _, name := range []string{"a", "b"} {
				p, err := air.OpenPTY(name, proto, lora.Params{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				port := openPort(t, p)
				switch proto {
				case emulator.RNode:
					m := lora.NewRNode(port)
					t.Cleanup(func() { m.Close() })
					if err := m.Configure(t.Context(), fast, lora.EU868Sub10); err != nil {
						t.Fatal(err)
					}
					ms = append(ms, m)
				case emulator.RF95:
					m := lora.NewRF95(port)
					t.Cleanup(func() { m.Close() })
					if err := m.Configure(t.Context(), 1, fast.Frequency); err != nil {
						t.Fatal(err)
					}
					ms = append(ms, m)
				}
			}
			for round := range 2 {
				start := time.Now()
				la := lora.NewLink(lora.LinkConfig{Modem: ms[0], Params: fast, Budget: lora.NewBudget(lora.EU868Sub10), Initiator: true})
				lb := lora.NewLink(lora.LinkConfig{Modem: ms[1], Params: fast, Budget: lora.NewBudget(lora.EU868Sub10)})
				ra, rb := carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{})
				if ra.Err != nil || rb.Err != nil {
					t.Fatalf("contact %d: %v / %v", round, ra.Err, rb.Err)
				}
				t.Logf("contact %d: %v", round, time.Since(start).Round(time.Millisecond))
				time.Sleep(500 * time.Millisecond) // let the last FIN land before the next link
			}
			north, river := carriertest.States(t, a), carriertest.States(t, b)
			if north["hello river"] != "delivered" || north["hello north"] != "received" ||
				river["hello north"] != "delivered" || river["hello river"] != "received" {
				t.Fatalf("north %v, river %v", north, river)
			}
		})
	}
}
