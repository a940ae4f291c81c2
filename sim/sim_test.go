package sim_test

import (
	"bytes"
	"testing"

	"ferry/node"
	"ferry/sim"
)

// TestSmallScenario runs the small scenario under ferry's policy and the
// two baselines: every policy delivers something, ferry delivers as much
// as epidemic routing with fewer bytes carried, direct delivery no more,
// and no store exceeds its quota.
func TestSmallScenario(t *testing.T) {
	sc := sim.Small()
	var rs []*sim.Result
	for _, mode := range []node.RoutingMode{node.RouteFerry, node.RouteEpidemic, node.RouteDirect} {
		r, err := sim.Run(t.Context(), sc, mode, sim.RunOptions{Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		rs = append(rs, r)
	}
	var out bytes.Buffer
	sim.WriteTable(&out, rs)
	t.Log("\n" + out.String())
	ferry, epidemic, direct := rs[0], rs[1], rs[2]
	if epidemic.All.Sent == 0 || epidemic.All.Delivered == 0 {
		t.Fatal("nothing delivered")
	}
	if ferry.All.Delivered < epidemic.All.Delivered {
		t.Errorf("ferry delivered %d, epidemic %d", ferry.All.Delivered, epidemic.All.Delivered)
	}
	if direct.All.Delivered > epidemic.All.Delivered {
		t.Errorf("direct delivered %d, more than epidemic's %d", direct.All.Delivered, epidemic.All.Delivered)
	}
	if ferry.Carried >= epidemic.Carried {
		t.Errorf("ferry carried %d bytes, epidemic %d", ferry.Carried, epidemic.Carried)
	}
	// The custody records account for the bytes carried: each bundle
	// counted once per peer or stick it went to, so no more than the
	// bytes written, and the bulky bundles among them.
	for _, r := range rs {
		var sum, bulky int64
		for _, f := range r.Flows {
			sum += f.Bytes
			if f.Kind == "bulky" {
				bulky += f.Bytes
			}
		}
		if sum == 0 || sum > r.Carried || bulky == 0 {
			t.Errorf("%s: flows %d bytes (%d bulky), carried %d", r.Mode, sum, bulky, r.Carried)
		}
	}
	if ferry.CarryQuota == 0 || ferry.MaxStore > ferry.CarryQuota {
		t.Errorf("max store %d over quota %d", ferry.MaxStore, ferry.CarryQuota)
	}
}
