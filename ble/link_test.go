package ble

import (
	"fmt"
	"testing"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

var mtus = []int{23, 185, 517}

// harness connects node a as the central to node b's service.
func (r radio) harness() carriertest.Harness {
	return carriertest.Harness{Connect: func(t testing.TB, a, b *node.Node) (carriers.Link, carriers.Link) {
		return r.connect(t, NewService(b.ID(), ServiceOptions{}))
	}}
}

func TestConformance(t *testing.T) {
	for _, mtu := range mtus {
		t.Run(fmt.Sprintf("MTU%d", mtu), func(t *testing.T) {
			carriertest.Run(t, radio{MTU: mtu}.harness())
		})
	}
}

func TestSyncMessagesAndReceipts(t *testing.T) {
	for _, mtu := range mtus {
		t.Run(fmt.Sprintf("MTU%d", mtu), func(t *testing.T) {
			a, b := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
			carriertest.Introduce(t, a, b)
			for i := range 3 {
				carriertest.Send(t, a, b, fmt.Sprintf("north to river %d", i))
			}
			carriertest.Send(t, b, a, "river to north")
			r := radio{MTU: mtu, Rate: 200_000}
			la, lb := r.connect(t, NewService(b.ID(), ServiceOptions{}))
			want := min(mtu, 515) - 3
			if la.ChunkSize() != want || lb.ChunkSize() != want {
				t.Errorf("chunks of %d and %d bytes at MTU %d, want %d", la.ChunkSize(), lb.ChunkSize(), mtu, want)
			}
			ra, rb := carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{})
			if ra.Err != nil || rb.Err != nil {
				t.Fatalf("sync: %v / %v", ra.Err, rb.Err)
			}
			if rb.Report.Messages != 3 || ra.Report.Messages != 1 {
				t.Errorf("messages: river %d, north %d", rb.Report.Messages, ra.Report.Messages)
			}
			if ra.Report.Medium != "ble" {
				t.Errorf("medium %q", ra.Report.Medium)
			}
			sa, sb := carriertest.States(t, a), carriertest.States(t, b)
			if sa["north to river 0"] != "delivered" || sa["river to north"] != "received" || sb["river to north"] != "delivered" {
				t.Errorf("states: north %v, river %v", sa, sb)
			}
		})
	}
}
