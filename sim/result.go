package sim

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"ferry/node"
)

// Result is what a run measured.
type Result struct {
	Scenario string           `json:"scenario"`
	Mode     node.RoutingMode `json:"mode"`
	Nodes    int              `json:"nodes"`
	Days     int              `json:"days"`

	Messages Delivery `json:"messages"`
	Bulk     Delivery `json:"bulk"`
	All      Delivery `json:"all"`

	// Carried is the bundle bytes written to carriers (sent over live
	// links, written to sticks); DeliveredBytes the bytes of bundles
	// applied at their destinations.
	Carried        int64 `json:"carried_bytes"`
	DeliveredBytes int64 `json:"delivered_bytes"`
	// PeakCopies and MeanCopies count the bundles held for carrying in
	// every store and on every stick, sampled daily.
	PeakCopies int     `json:"peak_copies"`
	MeanCopies float64 `json:"mean_copies"`
	// MaxStore is the most bytes any node held for others at a daily
	// sample; CarryQuota its quota (0: none).
	MaxStore   int64          `json:"max_store_bytes"`
	CarryQuota int64          `json:"carry_quota"`
	Contacts   map[string]int `json:"contacts"`
	// Flows breaks the bundles handed on down by carrier and kind (from
	// every node's custody records, one per bundle and peer or stick).
	Flows []Flow `json:"flows"`
	// Wall is how long the run took.
	Wall time.Duration `json:"wall_ns"`

	copiesSum, samples int
}

// Flow counts the bundles of one kind handed on over one carrier: to
// their destination or to a relay (a stick counts as a relay).
type Flow struct {
	Carrier string `json:"carrier"`
	Kind    string `json:"kind"` // "message", "receipt", "bulky"
	ToDest  bool   `json:"to_dest"`
	Count   int    `json:"count"`
	Bytes   int64  `json:"bytes"`
}

// WriteFlows writes each run's flows, one line each, the largest first.
func WriteFlows(w io.Writer, rs []*Result) {
	for _, r := range rs {
		fmt.Fprintf(w, "%s: bundles handed on, by carrier and kind\n", r.Mode)
		fs := slices.Clone(r.Flows)
		slices.SortFunc(fs, func(a, b Flow) int { return cmp.Compare(b.Bytes, a.Bytes) })
		for _, f := range fs {
			to := "relay"
			if f.ToDest {
				to = "destination"
			}
			fmt.Fprintf(w, "  %-9s %-8s to %-11s %7d bundles %9.1f MB\n", f.Carrier, f.Kind, to, f.Count, float64(f.Bytes)/1e6)
		}
	}
}

// Overhead returns the bytes carried per byte delivered.
func (r *Result) Overhead() float64 {
	if r.DeliveredBytes == 0 {
		return 0
	}
	return float64(r.Carried) / float64(r.DeliveredBytes)
}

// Delivery counts items sent and delivered, and the latency of those
// delivered.
type Delivery struct {
	Sent      int           `json:"sent"`
	Delivered int           `json:"delivered"`
	Median    time.Duration `json:"median_ns"`
	P95       time.Duration `json:"p95_ns"`
	latencies []time.Duration
}

// Ratio returns the share delivered.
func (d *Delivery) Ratio() float64 {
	if d.Sent == 0 {
		return 0
	}
	return float64(d.Delivered) / float64(d.Sent)
}

func (d *Delivery) summarize() {
	slices.Sort(d.latencies)
	d.Median, d.P95 = percentile(d.latencies, 0.5), percentile(d.latencies, 0.95)
}

// percentile returns the p-quantile of sorted ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// WriteTable writes results side by side, one column per run.
func WriteTable(w io.Writer, rs []*Result) {
	if len(rs) == 0 {
		return
	}
	row := func(name string, f func(r *Result) string) {
		fmt.Fprintf(w, "| %-34s |", name)
		for _, r := range rs {
			fmt.Fprintf(w, " %14s |", f(r))
		}
		fmt.Fprintln(w)
	}
	row("scenario "+rs[0].Scenario, func(r *Result) string { return string(r.Mode) })
	fmt.Fprintf(w, "|%s|", strings.Repeat("-", 36))
	for range rs {
		fmt.Fprintf(w, "%s:|", strings.Repeat("-", 15))
	}
	fmt.Fprintln(w)
	ratio := func(d Delivery) string { return fmt.Sprintf("%.3f (%d/%d)", d.Ratio(), d.Delivered, d.Sent) }
	row("delivery ratio, all", func(r *Result) string { return ratio(r.All) })
	row("delivery ratio, messages", func(r *Result) string { return ratio(r.Messages) })
	row("delivery ratio, bulky", func(r *Result) string { return ratio(r.Bulk) })
	row("latency median, all", func(r *Result) string { return hours(r.All.Median) })
	row("latency p95, all", func(r *Result) string { return hours(r.All.P95) })
	row("latency median / p95, messages", func(r *Result) string {
		return hours(r.Messages.Median) + " / " + hours(r.Messages.P95)
	})
	row("latency median / p95, bulky", func(r *Result) string { return hours(r.Bulk.Median) + " / " + hours(r.Bulk.P95) })
	row("bytes carried", func(r *Result) string { return fmt.Sprintf("%.1f MB", float64(r.Carried)/1e6) })
	row("bytes delivered", func(r *Result) string { return fmt.Sprintf("%.1f MB", float64(r.DeliveredBytes)/1e6) })
	row("overhead (carried / delivered)", func(r *Result) string { return fmt.Sprintf("%.2f", r.Overhead()) })
	row("stored copies, mean / peak", func(r *Result) string { return fmt.Sprintf("%.0f / %d", r.MeanCopies, r.PeakCopies) })
	row("max store for others / quota", func(r *Result) string {
		q := "none"
		if r.CarryQuota > 0 {
			q = fmt.Sprintf("%.0f MB", float64(r.CarryQuota)/1e6)
		}
		return fmt.Sprintf("%.1f MB / %s", float64(r.MaxStore)/1e6, q)
	})
	row("contacts", func(r *Result) string { return fmt.Sprint(sumContacts(r.Contacts)) })
	row("wall time", func(r *Result) string { return r.Wall.Round(time.Second).String() })
}

func hours(d time.Duration) string { return fmt.Sprintf("%.1f h", d.Hours()) }
