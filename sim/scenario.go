package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenario is a simulated network: communities, the contacts between
// them over 30 days or so, and the traffic they send. See
// docs/routing.md ("The simulator") for the named scenarios.
type Scenario struct {
	Name  string
	About string
	Nodes []string
	Days  int
	Links []Link
	Walks []Walk
	Cuts  []Cut
	// Traffic is what every community sends.
	Traffic Traffic
	// Seed makes the traffic reproducible.
	Seed uint64
	// CarryQuota and PeerQuota are each node's quotas under ferry's
	// policy (node.Routing); the baselines run without.
	CarryQuota, PeerQuota int64
}

// Link is a live link between two communities, up at a period: a LAN
// ("tcp"), the Internet ("internet") or a LoRa pair ("lora").
type Link struct {
	A, B   string
	Medium string
	// Every is the period of the link's sessions; Offset the first.
	Every, Offset time.Duration
	// Capacity bounds the bundle bytes each side sends in one session
	// (a LoRa window); 0 means no bound.
	Capacity int64
}

// Walk is a stick carried along a route: it is plugged into each
// community of Route in turn, Step apart, every Every from Offset.
type Walk struct {
	Stick         string
	Route         []string
	Every, Offset time.Duration
	Step          time.Duration
	Capacity      int64
}

// Cut takes a medium down from From to To (since the start).
type Cut struct {
	Medium   string
	From, To time.Duration
}

// Traffic is what each community sends: Messages a day (short
// messages, to random other communities) and Bulk a week (archive
// deltas of BulkSize bytes), until Until.
type Traffic struct {
	Messages    float64
	MessageSize int
	Bulk        float64
	BulkSize    int
	Until       time.Duration
}

const day = 24 * time.Hour

// Scenarios returns the named scenarios.
func Scenarios() []Scenario { return []Scenario{Small(), Bench20()} }

// ScenarioByName returns the scenario named name.
func ScenarioByName(name string) (Scenario, error) {
	var names []string
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Scenario{}, fmt.Errorf("sim: no scenario %q (try %s)", name, strings.Join(names, ", "))
}

// Small is a scenario of five communities over six days that runs in
// seconds: a LAN pair, a stick walked along three, a LoRa pair, an
// Internet link cut for two days.
func Small() Scenario {
	return Scenario{
		Name:  "small",
		About: "5 communities, 6 days: LAN north-river, stick river-lake-hill, LoRa hill-pass, Internet north-pass cut on days 2-4",
		Nodes: []string{"north", "river", "lake", "hill", "pass"},
		Days:  6,
		Links: []Link{
			{A: "north", B: "river", Medium: "tcp", Every: 12 * time.Hour, Offset: time.Hour},
			{A: "hill", B: "pass", Medium: "lora", Every: day, Offset: 20 * time.Hour, Capacity: 16 << 10},
			{A: "north", B: "pass", Medium: "internet", Every: day, Offset: 8 * time.Hour},
		},
		Walks: []Walk{{Stick: "s1", Route: []string{"river", "lake", "hill", "lake"}, Every: 2 * day, Offset: 3 * time.Hour,
			Step: 8 * time.Hour, Capacity: 1 << 30}},
		Cuts:       []Cut{{Medium: "internet", From: 2 * day, To: 4 * day}},
		Traffic:    Traffic{Messages: 3, MessageSize: 200, Bulk: 2, BulkSize: 96 << 10, Until: 3 * day},
		Seed:       1,
		CarryQuota: 16 << 20, PeerQuota: 8 << 20,
	}
}

// Bench20 is the benchmark of acceptance 3: 20 communities in five
// valleys of four, 30 days. In each valley a gateway has a LAN to its
// neighbour, a stick walks the valley and back every two days, and LoRa
// pairs link the far end (16 KB a day each). Gateways reach each other
// over the Internet twice a day, except for a week-long cut (days
// 10-17); sticks cross between neighbouring valleys' far ends weekly.
func Bench20() Scenario {
	sc := Scenario{
		Name:  "bench20",
		About: "20 communities in 5 valleys, 30 days, LAN + sticks + LoRa + Internet with a week-long cut (days 10-17)",
		Days:  30,
		Cuts:  []Cut{{Medium: "internet", From: 10 * day, To: 17 * day}},
		Traffic: Traffic{Messages: 4, MessageSize: 240, Bulk: 1, BulkSize: 256 << 10,
			Until: 23 * day},
		Seed:       20,
		CarryQuota: 256 << 20, PeerQuota: 32 << 20,
	}
	const valleys = 5
	name := func(v, i int) string { return fmt.Sprintf("v%d-%c", v, 'a'+i) }
	for v := range valleys {
		for i := range 4 {
			sc.Nodes = append(sc.Nodes, name(v, i))
		}
		off := time.Duration(v) * time.Hour
		sc.Links = append(sc.Links,
			Link{A: name(v, 0), B: name(v, 1), Medium: "tcp", Every: 6 * time.Hour, Offset: off},
			Link{A: name(v, 2), B: name(v, 3), Medium: "lora", Every: day, Offset: 20*time.Hour + off, Capacity: 16 << 10})
		sc.Walks = append(sc.Walks, Walk{Stick: fmt.Sprintf("valley%d", v),
			Route: []string{name(v, 0), name(v, 1), name(v, 2), name(v, 3), name(v, 2), name(v, 1)},
			Every: 2 * day, Offset: 2*time.Hour + off, Step: 6 * time.Hour, Capacity: 1 << 30})
		w := (v + 1) % valleys
		sc.Walks = append(sc.Walks, Walk{Stick: fmt.Sprintf("pass%d", v), Route: []string{name(v, 3), name(w, 3)},
			Every: 7 * day, Offset: time.Duration(v)*day + 10*time.Hour, Step: 2 * day, Capacity: 1 << 30})
		for u := v + 1; u < valleys; u++ {
			sc.Links = append(sc.Links, Link{A: name(v, 0), B: name(u, 0), Medium: "internet", Every: 12 * time.Hour,
				Offset: 4*time.Hour + time.Duration(v+u)*10*time.Minute})
		}
	}
	return sc
}

// check reports a scenario that names unknown communities.
func (sc *Scenario) check() error {
	known := func(n string) bool { return slices.Contains(sc.Nodes, n) }
	for _, l := range sc.Links {
		if !known(l.A) || !known(l.B) || l.Every <= 0 {
			return fmt.Errorf("sim: scenario %s: bad link %s-%s", sc.Name, l.A, l.B)
		}
	}
	for _, w := range sc.Walks {
		for _, n := range w.Route {
			if !known(n) {
				return fmt.Errorf("sim: scenario %s: walk %s visits unknown %s", sc.Name, w.Stick, n)
			}
		}
		if w.Every <= 0 {
			return fmt.Errorf("sim: scenario %s: walk %s has no period", sc.Name, w.Stick)
		}
	}
	return nil
}

func (sc *Scenario) cut(medium string, at time.Duration) bool {
	for _, c := range sc.Cuts {
		if c.Medium == medium && at >= c.From && at < c.To {
			return true
		}
	}
	return false
}
