package sim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// RunOptions tune a run.
type RunOptions struct {
	// Dir holds the nodes and sticks; empty means a new temporary folder,
	// removed at the end. (A tmpfs such as /dev/shm makes runs faster.)
	Dir string
	// Log, if set, receives a line per simulated day.
	Log io.Writer
	// Lora makes LoRa links; nil means in-memory links of 251-byte frames.
	Lora LinkFunc
	// Copies, if positive, overrides node.DefaultCopies under ferry's
	// policy.
	Copies int
}

// event is one thing that happens at a time.
type event struct {
	at  time.Duration
	run func(ctx context.Context) error
}

// item is a message or bulky bundle sent, to follow to its destination.
type item struct {
	bulk    bool
	from    *node.Node
	to      *node.Node
	msg     node.MessageID
	bundle  bundle.ID
	created time.Time
}

// Run simulates sc under the routing mode, and reports what happened.
func Run(ctx context.Context, sc Scenario, mode node.RoutingMode, o RunOptions) (*Result, error) {
	if err := sc.check(); err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ferry-sim-")
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	} else {
		d, err := os.MkdirTemp(dir, "ferry-sim-"+string(mode)+"-")
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	routing := node.Routing{Mode: mode, Copies: o.Copies}
	if mode == node.RouteFerry {
		routing.CarryQuota, routing.PeerQuota = sc.CarryQuota, sc.PeerQuota
	}
	clock := NewClock(Start)
	nw, err := NewNetwork(ctx, dir, sc.Nodes, Options{Now: clock.Now, Routing: routing})
	if err != nil {
		return nil, err
	}
	defer nw.Close()
	r := &runner{sc: sc, nw: nw, clock: clock, o: o, res: &Result{Scenario: sc.Name, Mode: mode,
		CarryQuota: routing.CarryQuota, Nodes: len(sc.Nodes), Days: sc.Days}}
	if r.o.Lora == nil {
		r.o.Lora = PipeLink("lora", 251)
	}
	evs, err := r.events()
	if err != nil {
		return nil, err
	}
	started := time.Now()
	for _, e := range evs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		clock.Set(Start.Add(e.at))
		if err := e.run(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.finish(ctx); err != nil {
		return nil, err
	}
	r.res.Wall = time.Since(started)
	r.res.Contacts = nw.Contacts
	return r.res, nil
}

type runner struct {
	sc     Scenario
	nw     *Network
	clock  *Clock
	o      RunOptions
	res    *Result
	items  []item
	sticks []*Stick
}

// events lays out the scenario's contacts, traffic and daily samples in
// time order.
func (r *runner) events() ([]event, error) {
	end := time.Duration(r.sc.Days) * day
	var evs []event
	add := func(at time.Duration, run func(ctx context.Context) error) {
		if at < end {
			evs = append(evs, event{at, run})
		}
	}
	for _, l := range r.sc.Links {
		a, b := r.nw.Node(l.A), r.nw.Node(l.B)
		mk := PipeLink(l.Medium, 64<<10)
		if l.Medium == "lora" {
			mk = r.o.Lora
		}
		for t := l.Offset; t < end; t += l.Every {
			if r.sc.cut(l.Medium, t) {
				continue
			}
			add(t, func(ctx context.Context) error {
				_, _, err := r.nw.Live(ctx, a, b, mk, l.Capacity)
				return err
			})
		}
	}
	for _, w := range r.sc.Walks {
		s, err := r.nw.NewStick(w.Stick, w.Capacity)
		if err != nil {
			return nil, err
		}
		r.sticks = append(r.sticks, s)
		for t := w.Offset; t < end; t += w.Every {
			for i, stop := range w.Route {
				n := r.nw.Node(stop)
				add(t+time.Duration(i)*w.Step, func(ctx context.Context) error {
					_, err := r.nw.Plug(ctx, s, n)
					return err
				})
			}
		}
	}
	rng := rand.New(rand.NewPCG(r.sc.Seed, 0x5eed))
	tr := r.sc.Traffic
	for i, from := range r.sc.Nodes {
		others := slices.Delete(slices.Clone(r.sc.Nodes), i, i+1)
		count := func(perDay float64) int { return int(perDay*float64(tr.Until)/float64(day) + 0.5) }
		for k := range count(tr.Messages) {
			at := time.Duration(rng.Int64N(int64(tr.Until)))
			to := others[rng.IntN(len(others))]
			body := fmt.Sprintf("%s to %s #%d ", from, to, k)
			body += strings.Repeat(".", max(tr.MessageSize-len(body), 0))
			add(at, func(ctx context.Context) error { return r.send(ctx, from, to, body) })
		}
		for range count(tr.Bulk / 7) {
			at := time.Duration(rng.Int64N(int64(tr.Until)))
			to := others[rng.IntN(len(others))]
			add(at, func(ctx context.Context) error { return r.sendBulk(ctx, from, to, tr.BulkSize) })
		}
	}
	for d := time.Duration(0); d < end; d += day {
		add(d+day-time.Minute, func(ctx context.Context) error { return r.sample(ctx, d/day) })
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	return evs, nil
}

func (r *runner) send(ctx context.Context, from, to, body string) error {
	id, err := r.nw.Send(ctx, from, to, body)
	if err != nil {
		return err
	}
	r.items = append(r.items, item{from: r.nw.Node(from), to: r.nw.Node(to), msg: id, created: r.clock.Now()})
	return nil
}

func (r *runner) sendBulk(ctx context.Context, from, to string, size int) error {
	id, _, err := r.nw.SendBulk(ctx, from, to, size)
	if err != nil {
		return err
	}
	r.items = append(r.items, item{bulk: true, from: r.nw.Node(from), to: r.nw.Node(to), bundle: id, created: r.clock.Now()})
	return nil
}

// sample records, once a simulated day, what every store holds.
func (r *runner) sample(ctx context.Context, d time.Duration) error {
	var copies int
	var maxCarry int64
	for _, n := range r.nw.Nodes {
		var held int
		if err := n.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM bundles WHERE state IN ('outbound', 'carry')`).Scan(&held); err != nil {
			return err
		}
		carry, _, err := n.Carrying(ctx)
		if err != nil {
			return err
		}
		copies += held
		maxCarry = max(maxCarry, carry)
	}
	for _, s := range r.sticks {
		bs, err := s.Bundles()
		if err != nil {
			return err
		}
		copies += len(bs)
	}
	r.res.PeakCopies = max(r.res.PeakCopies, copies)
	r.res.copiesSum += copies
	r.res.samples++
	r.res.MaxStore = max(r.res.MaxStore, maxCarry)
	if r.o.Log != nil {
		fmt.Fprintf(r.o.Log, "%s day %2d: %d contacts, %d items sent, %d copies stored, %.1f MB carried\n",
			r.res.Mode, int(d)+1, sumContacts(r.nw.Contacts), len(r.items), copies, float64(r.nw.Carried)/1e6)
	}
	return nil
}

func sumContacts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// finish measures delivery: which items reached their destination, when,
// and the bytes carried and delivered.
func (r *runner) finish(ctx context.Context) error {
	res := r.res
	for _, it := range r.items {
		var at int64
		var err error
		if it.bulk {
			err = it.to.DB().QueryRowContext(ctx, `SELECT COALESCE(MAX(received_at), 0) FROM bundles WHERE id = ? AND state = 'applied'`,
				it.bundle[:]).Scan(&at)
		} else {
			err = it.to.DB().QueryRowContext(ctx, `SELECT COALESCE(MAX(received_at), 0) FROM messages WHERE origin = ? AND seq = ?`,
				it.msg.Origin[:], it.msg.Seq).Scan(&at)
		}
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		k := &res.Messages
		if it.bulk {
			k = &res.Bulk
		}
		k.Sent++
		if at == 0 {
			continue
		}
		k.Delivered++
		k.latencies = append(k.latencies, time.UnixMilli(at).Sub(it.created))
	}
	for _, n := range r.nw.Nodes {
		var size int64
		if err := n.DB().QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM bundles WHERE state = 'applied'`).Scan(&size); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		res.DeliveredBytes += size
	}
	res.Carried = r.nw.Carried
	if err := r.flows(ctx); err != nil {
		return err
	}
	res.Messages.summarize()
	res.Bulk.summarize()
	res.All = Delivery{Sent: res.Messages.Sent + res.Bulk.Sent, Delivered: res.Messages.Delivered + res.Bulk.Delivered,
		latencies: append(slices.Clone(res.Messages.latencies), res.Bulk.latencies...)}
	res.All.summarize()
	if res.samples > 0 {
		res.MeanCopies = float64(res.copiesSum) / float64(res.samples)
	}
	return nil
}

// flows sums every node's custody records by carrier, kind and whether the
// bundle went to its destination.
func (r *runner) flows(ctx context.Context) error {
	type key struct {
		carrier, kind string
		toDest        bool
	}
	sum := map[key]*Flow{}
	for _, n := range r.nw.Nodes {
		rows, err := n.DB().QueryContext(ctx, `SELECT h.carrier, b.kind, b.priority, b.size,
				b.dest_type = ? AND b.dest = h.peer FROM handoffs h JOIN bundles b ON b.id = h.bundle`, bundle.DestNode)
		if err != nil {
			return fmt.Errorf("sim: flows: %w", err)
		}
		for rows.Next() {
			var k key
			var kind bundle.Kind
			var prio int
			var size int64
			if err := rows.Scan(&k.carrier, &kind, &prio, &size, &k.toDest); err != nil {
				rows.Close()
				return fmt.Errorf("sim: flows: %w", err)
			}
			switch {
			case kind == bundle.KindArchive || size > node.DefaultBulkSize:
				k.kind = "bulky"
			case prio == 0:
				k.kind = "receipt"
			default:
				k.kind = "message"
			}
			f := sum[k]
			if f == nil {
				f = &Flow{Carrier: k.carrier, Kind: k.kind, ToDest: k.toDest}
				sum[k] = f
			}
			f.Count++
			f.Bytes += size
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	for _, f := range sum {
		r.res.Flows = append(r.res.Flows, *f)
	}
	slices.SortFunc(r.res.Flows, func(a, b Flow) int {
		return cmp.Or(cmp.Compare(a.Carrier, b.Carrier), cmp.Compare(a.Kind, b.Kind), compareBool(a.ToDest, b.ToDest))
	})
	return nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
