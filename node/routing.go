package node

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"ferry/bundle"
)

// RoutingMode names a routing policy. See docs/routing.md.
type RoutingMode string

// Routing modes.
const (
	// RouteFerry is ferry's policy: epidemic with inventories for
	// messages and receipts, bounded copies for bulky bundles, delivery
	// predictability to choose when capacity is scarce, and carry quotas.
	RouteFerry RoutingMode = "ferry"
	// RouteEpidemic hands every bundle to every peer that lacks it;
	// delivered news (routing summaries) still drops delivered bundles.
	RouteEpidemic RoutingMode = "epidemic"
	// RouteEpidemicPlain is plain epidemic routing: like RouteEpidemic,
	// but only the destination's own receipts and inventories settle a
	// bundle (ferry's behaviour before routing summaries).
	RouteEpidemicPlain RoutingMode = "epidemic-plain"
	// RouteDirect hands a bundle only to its destination: nodes never
	// carry for others (a stick still carries its source's bundles).
	RouteDirect RoutingMode = "direct"
)

// Routing tunes the routing policy. The zero value is ferry's policy with
// its defaults and no quotas.
type Routing struct {
	Mode RoutingMode
	// Copies is how many copies of a bulky bundle its source hands to
	// nodes other than the destination (spray and wait); 0 means
	// DefaultCopies.
	Copies int
	// BulkSize: bundles larger than this, and archive bundles, are bulky;
	// 0 means DefaultBulkSize.
	BulkSize int64
	// CarryQuota bounds the bytes the node holds for others in all; 0
	// means no bound.
	CarryQuota int64
	// PeerQuota bounds the bytes the node holds for others from one
	// origin; 0 means no bound.
	PeerQuota int64
	// BulkOnNarrow lets bulky bundles go over narrow carriers (LoRa, small-capacity links).
	BulkOnNarrow bool
}

// Routing defaults.
const (
	DefaultCopies   = 4
	DefaultBulkSize = 64 << 10
	// NarrowCapacity: a contact that can carry less than this is narrow
	// (LoRa carries a few kilobytes an hour): messages and receipts only.
	NarrowCapacity = 256 << 10
	// FocusMargin: a bulky bundle's copies go (other than to its
	// destination) only to a peer whose delivery predictability for the
	// destination exceeds the holder's own by more than this.
	FocusMargin = 0.1
	// FocusRatio: ... or more than this many times the holder's own.
	FocusRatio = 2
)

// PRoPHET parameters (RFC 6693 §2.1.1, with its recommended values).
const (
	predictInit  = 0.75          // P_encounter: added on each encounter
	predictBeta  = 0.25          // transitivity scaling
	predictGamma = 0.98          // aging factor per time unit
	predictUnit  = 6 * time.Hour // the aging time unit
	predictFloor = 0.005         // below this a predictability is forgotten
	maxRoutes    = 1024          // predictabilities in one summary
	maxDelivered = 1 << 16       // delivered bundles in one summary
	stickMemory  = 60 * 24 * time.Hour
)

// ErrCarryQuota means the node holds as much for others as its quota allows.
var ErrCarryQuota = errors.New("carry quota full")

// ErrDirectOnly means the node's routing is direct delivery only: it does
// not carry for others.
var ErrDirectOnly = errors.New("routing is direct delivery only: not carrying for others")

// SetRouting sets the node's routing policy.
func (n *Node) SetRouting(r Routing) {
	n.routeMu.Lock()
	n.routing = r
	n.routeMu.Unlock()
}

// Routing returns the node's routing policy, defaults filled in.
func (n *Node) Routing() Routing {
	n.routeMu.Lock()
	r := n.routing
	n.routeMu.Unlock()
	if r.Mode == "" {
		r.Mode = RouteFerry
	}
	if r.Copies <= 0 {
		r.Copies = DefaultCopies
	}
	if r.BulkSize <= 0 {
		r.BulkSize = DefaultBulkSize
	}
	return r
}

// bulky reports whether the policy treats a bundle as bulky.
func (r Routing) bulky(kind bundle.Kind, size int64) bool {
	return kind == bundle.KindArchive || size > r.BulkSize
}

// Contact describes a contact to plan for: a live peer, or a stick.
type Contact struct {
	// Peer is the node at the other end of a live link; the zero ID for
	// a stick.
	Peer bundle.NodeID
	// Medium is the carrier: "tcp", "lora", "ble", "usb", ...
	Medium string
	// Capacity is how many bundle bytes the contact can carry; 0 means
	// unknown (plenty).
	Capacity int64
	// Reach is the other side's delivery predictability per destination:
	// a live peer's summary, or for a stick the best of the nodes it
	// meets (1 for each of them). Nil when unknown.
	Reach map[bundle.NodeID]float64
}

// Narrow reports whether the contact is a link that carries only a few
// kilobytes: LoRa, or a live link with a small capacity. (A stick that is
// nearly full is not narrow: what does not fit waits. BLE is not narrow by
// its medium: it moves tens of kilobytes a second while two nodes or a
// phone are near, so a contact's capacity says when it is short.)
func (c Contact) Narrow() bool {
	return c.Medium == "lora" ||
		c.Peer != (bundle.NodeID{}) && c.Capacity > 0 && c.Capacity < NarrowCapacity
}

func (c Contact) reach(dest bundle.Destination) float64 {
	if dest.Type != bundle.DestNode {
		return 0
	}
	d := bundle.NodeID(dest.ID)
	if c.Peer != (bundle.NodeID{}) && d == c.Peer {
		return 1
	}
	return c.Reach[d]
}

// Plan chooses, from the bundles the node could hand on at a contact
// (already filtered to what the other side lacks), those the routing
// policy hands on, in the order to send them. See docs/routing.md.
func (n *Node) Plan(ctx context.Context, c Contact, cands []BundleInfo) ([]BundleInfo, error) {
	r := n.Routing()
	if r.Mode == RouteEpidemicPlain {
		r.Mode = RouteEpidemic
	}
	if r.Mode == RouteEpidemic {
		if !c.Narrow() || r.BulkOnNarrow {
			return cands, nil
		}
	}
	mine, err := n.Predictability(ctx)
	if err != nil {
		return nil, err
	}
	given, err := n.copiesGiven(ctx, cands, r)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, b := range cands {
		total += b.Size
	}
	scarce := c.Narrow() || c.Capacity > 0 && total > c.Capacity
	self := n.ID()
	type planned struct {
		b     BundleInfo
		reach float64
	}
	var out []planned
	for _, b := range cands {
		reach := c.reach(b.Dest)
		bulky := r.bulky(b.Kind, b.Size)
		if c.Narrow() && bulky && !r.BulkOnNarrow && reach < 1 {
			continue
		}
		var dest bundle.NodeID
		if b.Dest.Type == bundle.DestNode {
			dest = bundle.NodeID(b.Dest.ID)
		}
		keep := false
		switch r.Mode {
		case RouteEpidemic:
			keep = !(c.Narrow() && bulky && !r.BulkOnNarrow)
		case RouteDirect:
			// The destination itself; or a stick that has not met anyone
			// yet, or has met the destination.
			keep = reach >= 1 || c.Peer == (bundle.NodeID{}) && len(c.Reach) == 0
		default:
			switch {
			case reach >= 1 || b.Dest.Type != bundle.DestNode:
				keep = true
			case c.Peer == (bundle.NodeID{}) && len(c.Reach) == 0:
				// A new stick: nobody knows where it goes. Messages go;
				// bulky bundles spend a copy.
				keep = !bulky || copiesLeft(r, self, b, given) > 0
			case !bulky:
				// Epidemic for messages; when capacity is scarce, only
				// to a peer at least as likely to reach the destination.
				keep = !scarce || reach >= mine[dest]
			default:
				left := copiesLeft(r, self, b, given)
				keep = left > 1 && sprayTo(reach, mine[dest]) || left == 1 && focusTo(reach, mine[dest])
			}
		}
		if keep {
			out = append(out, planned{b, reach})
		}
	}
	slices.SortStableFunc(out, func(a, b planned) int {
		if da, db := a.reach >= 1, b.reach >= 1; da != db {
			if da {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.b.Priority, b.b.Priority); c != 0 {
			return c
		}
		if scarce {
			if c := cmp.Compare(b.reach, a.reach); c != 0 {
				return c
			}
		}
		return a.b.Created.Compare(b.b.Created)
	})
	list := make([]BundleInfo, len(out))
	for i, p := range out {
		list[i] = p.b
	}
	return list, nil
}

// copiesLeft returns the copies of a bulky bundle this node may still hand
// to nodes other than its destination: its source starts with r.Copies
// (keeping one); any other holder with one, which it may forward once
// towards a node likelier to reach the destination.
func copiesLeft(r Routing, self bundle.NodeID, b BundleInfo, given map[bundle.ID]int) int {
	if b.Source == self {
		return max(r.Copies-given[b.ID], 0)
	}
	return max(1-given[b.ID], 0)
}

func (n *Node) copiesGiven(ctx context.Context, bs []BundleInfo, r Routing) (map[bundle.ID]int, error) {
	given := map[bundle.ID]int{}
	for _, b := range bs {
		if !r.bulky(b.Kind, b.Size) {
			continue
		}
		var k int
		err := n.db.QueryRowContext(ctx, `SELECT given FROM route_copies WHERE bundle = ?`, b.ID[:]).Scan(&k)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("node: routing: %w", err)
		}
		given[b.ID] = k
	}
	return given, nil
}

// spendCopies counts, in tx, the copies of bulky bundles handed to peer
// (the zero ID: a stick) that is not their destination.
func (n *Node) spendCopies(ctx context.Context, tx *sql.Tx, peer bundle.NodeID, ids []bundle.ID) error {
	r := n.Routing()
	for _, id := range ids {
		var kind bundle.Kind
		var size int64
		var destType bundle.DestType
		var dest []byte
		err := tx.QueryRowContext(ctx, `SELECT kind, size, dest_type, dest FROM bundles WHERE id = ?`, id[:]).Scan(&kind, &size, &destType, &dest)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return err
		}
		if !r.bulky(kind, size) || destType == bundle.DestNode && bundle.NodeID(dest) == peer {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO route_copies (bundle, given) VALUES (?, 1)
			ON CONFLICT DO UPDATE SET given = given + 1`, id[:]); err != nil {
			return err
		}
	}
	return nil
}

// Carrying returns the bytes the node holds for others: in all, and from
// each origin.
func (n *Node) Carrying(ctx context.Context) (int64, map[bundle.NodeID]int64, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT source, SUM(size) FROM bundles WHERE state = 'carry' GROUP BY source`)
	if err != nil {
		return 0, nil, fmt.Errorf("node: carrying: %w", err)
	}
	defer rows.Close()
	var total int64
	by := map[bundle.NodeID]int64{}
	for rows.Next() {
		var src []byte
		var size int64
		if err := rows.Scan(&src, &size); err != nil {
			return 0, nil, err
		}
		by[bundle.NodeID(src)] = size
		total += size
	}
	return total, by, rows.Err()
}

// carryQuota is what the node may still take in for others: a snapshot
// that Takes spends.
type carryQuota struct {
	mode        RoutingMode
	total, peer int64
	used        int64
	usedBy      map[bundle.NodeID]int64
}

func (n *Node) carryQuota(ctx context.Context) (*carryQuota, error) {
	r := n.Routing()
	q := &carryQuota{mode: r.Mode, total: r.CarryQuota, peer: r.PeerQuota}
	if q.total > 0 || q.peer > 0 {
		var err error
		if q.used, q.usedBy, err = n.Carrying(ctx); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// take returns nil and counts size if a bundle from source of size bytes
// may be taken in for carrying, or an error wrapping ErrCarryQuota or
// ErrDirectOnly.
func (q *carryQuota) take(source bundle.NodeID, size int64) error {
	if q.mode == RouteDirect {
		return ErrDirectOnly
	}
	if q.total > 0 && q.used+size > q.total {
		return fmt.Errorf("%w: %d of %d bytes held for others", ErrCarryQuota, q.used, q.total)
	}
	if q.peer > 0 && q.usedBy[source]+size > q.peer {
		return fmt.Errorf("%w: %d of %d bytes held for %s", ErrCarryQuota, q.usedBy[source], q.peer, source.Short())
	}
	q.used += size
	if q.usedBy == nil {
		q.usedBy = map[bundle.NodeID]int64{}
	}
	q.usedBy[source] += size
	return nil
}

// Takes returns nil if the node would take in a bundle of size bytes from
// source for carrying to another node, or why not: an error wrapping
// [ErrCarryQuota] or [ErrDirectOnly]. A nil error spends the quota, so that a
// session deciding many offered bundles does not overrun it.
func (p *Policy) Takes(source bundle.NodeID, dest bundle.Destination, size int64) error {
	if p.ForSelf(dest) || p.quota == nil {
		return nil
	}
	return p.quota.take(source, size)
}

// Predictability returns the node's delivery predictabilities, aged to
// now: for each destination, how likely this node is to deliver to it.
func (n *Node) Predictability(ctx context.Context) (map[bundle.NodeID]float64, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT node, p, at FROM route_predictability`)
	if err != nil {
		return nil, fmt.Errorf("node: predictability: %w", err)
	}
	defer rows.Close()
	now := n.now()
	out := map[bundle.NodeID]float64{}
	for rows.Next() {
		var id []byte
		var p float64
		var at int64
		if err := rows.Scan(&id, &p, &at); err != nil {
			return nil, err
		}
		if p = aged(p, now.Sub(timeMilli(at))); p >= predictFloor {
			out[bundle.NodeID(id)] = p
		}
	}
	return out, rows.Err()
}

func aged(p float64, d time.Duration) float64 {
	if d <= 0 {
		return p
	}
	return p * math.Pow(predictGamma, float64(d)/float64(predictUnit))
}

// Encounter records a contact with peer (RFC 6693: P(a,b) = P + (1 − P)
// × P_encounter) and, given the peer's predictabilities, the
// transitive ones (P(a,c) = max(P(a,c), P(a,b) × P(b,c) × β)).
func (n *Node) Encounter(ctx context.Context, peer bundle.NodeID, theirs map[bundle.NodeID]float64) error {
	mine, err := n.Predictability(ctx)
	if err != nil {
		return err
	}
	self := n.ID()
	pb := mine[peer]
	pb += (1 - pb) * predictInit
	mine[peer] = pb
	for c, pc := range theirs {
		if c == self || c == peer {
			continue
		}
		if t := pb * pc * predictBeta; t > mine[c] {
			mine[c] = t
		}
	}
	at := n.now().UnixMilli()
	return n.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM route_predictability`); err != nil {
			return err
		}
		for id, p := range mine {
			if _, err := tx.ExecContext(ctx, `INSERT INTO route_predictability (node, p, at) VALUES (?, ?, ?)`, id[:], p, at); err != nil {
				return err
			}
		}
		return nil
	})
}

// Routes is a node's routing summary, exchanged at every contact (a live
// session's ROUTES frame, a stick's FERRY/routes/ file): its delivery
// predictabilities and the bundles it knows were delivered, so that
// every holder can drop them.
type Routes struct {
	Node      bundle.NodeID
	At        time.Time
	P         map[bundle.NodeID]float64
	Delivered []SeqRef
}

// SeqRef names a bundle by its origin and number.
type SeqRef struct {
	Source bundle.NodeID
	Seq    uint64
}

// RoutesSummary returns the node's routing summary, with at most
// delivered bundles known delivered (the most recent first).
func (n *Node) RoutesSummary(ctx context.Context, delivered int) (*Routes, error) {
	p, err := n.Predictability(ctx)
	if err != nil {
		return nil, err
	}
	r := &Routes{Node: n.ID(), At: n.now(), P: p}
	if len(r.P) > maxRoutes {
		keep := make([]bundle.NodeID, 0, len(r.P))
		for id := range r.P {
			keep = append(keep, id)
		}
		slices.SortFunc(keep, func(a, b bundle.NodeID) int { return cmp.Compare(r.P[b], r.P[a]) })
		for _, id := range keep[maxRoutes:] {
			delete(r.P, id)
		}
	}
	if delivered <= 0 {
		return r, nil
	}
	delivered = min(delivered, maxDelivered)
	now := n.now().Unix()
	rows, err := n.db.QueryContext(ctx, `SELECT source, seq FROM (
			SELECT source, seq, received_at / 1000 AS at FROM bundles
				WHERE seq > 0 AND state IN ('delivered', 'applied') AND (expires = 0 OR expires > ?1)
			UNION ALL
			SELECT source, seq, at / 1000 FROM known_bundles
				WHERE seq > 0 AND reason = 'delivered' AND (expires = 0 OR expires > ?1))
		ORDER BY at DESC LIMIT ?2`, now, delivered)
	if err != nil {
		return nil, fmt.Errorf("node: routes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var src []byte
		var ref SeqRef
		if err := rows.Scan(&src, &ref.Seq); err != nil {
			return nil, err
		}
		ref.Source = bundle.NodeID(src)
		r.Delivered = append(r.Delivered, ref)
	}
	return r, rows.Err()
}

// LearnRoutes takes in a trusted node's routing summary: an encounter
// with it (once per summary: a stick may show the same one again), the
// transitive predictabilities, and the bundles it knows delivered, whose
// bodies this node then drops (except under plain epidemic routing). It
// returns how many bodies it dropped.
func (n *Node) LearnRoutes(ctx context.Context, r *Routes) (int, error) {
	if r.Node == n.ID() {
		return 0, nil
	}
	if _, err := n.Peer(ctx, r.Node.String()); err != nil {
		return 0, err
	}
	var heard int64
	err := n.db.QueryRowContext(ctx, `SELECT at FROM route_heard WHERE node = ?`, r.Node[:]).Scan(&heard)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("node: routes: %w", err)
	}
	fresh := r.At.UnixMilli() > heard && n.now().Sub(r.At) < stickMemory
	if fresh {
		if err := n.Encounter(ctx, r.Node, r.P); err != nil {
			return 0, err
		}
		if err := n.withTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO route_heard (node, at) VALUES (?, ?)
				ON CONFLICT DO UPDATE SET at = excluded.at`, r.Node[:], r.At.UnixMilli())
			return err
		}); err != nil {
			return 0, err
		}
	}
	if n.Routing().Mode == RouteEpidemicPlain {
		return 0, nil // plain epidemic routing: no delivered news
	}
	return n.settleDelivered(ctx, r.Delivered)
}

// settleDelivered drops the bodies of held bundles known delivered.
func (n *Node) settleDelivered(ctx context.Context, refs []SeqRef) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	var ids []bundle.ID
	for _, ref := range refs {
		var id []byte
		err := n.db.QueryRowContext(ctx, `SELECT id FROM bundles WHERE source = ? AND seq = ? AND state IN ('outbound', 'carry')`,
			ref.Source[:], ref.Seq).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("node: routes: %w", err)
		}
		ids = append(ids, bundle.ID(id))
	}
	return len(ids), n.Settled(ctx, ids)
}

// sprayTo reports whether the source of a bulky bundle spends one of its
// spare copies on a peer that reaches the destination with predictability
// reach, mine being its own: a peer clearly likelier than itself
// (focusTo), or anyone while it knows no way to the destination at all
// (nobody knows where the bundle goes).
func sprayTo(reach, mine float64) bool {
	return focusTo(reach, mine) || mine < predictFloor
}

// focusTo reports whether a holder of a bulky bundle hands a copy to a
// peer: only one clearly likelier to reach the destination (spray and
// focus): by more than FocusMargin, or (where predictabilities are small,
// far along a chain) more than FocusRatio times as likely. Predictabilities
// learned by transitivity differ by noise from node to node; a bare
// "higher" would pass copies along gateways that are no closer to the
// destination. One hop closer multiplies a transitive predictability by
// about 1/β = 4, so the ratio lets a copy move along a chain whose values
// are all far below the margin.
func focusTo(reach, mine float64) bool {
	return reach > mine+FocusMargin || reach > mine*FocusRatio
}
