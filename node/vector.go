package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"ferry/bundle"
)

// Range is a run of sequence numbers, from Lo to Hi inclusive.
type Range struct{ Lo, Hi uint64 }

// Len returns how many numbers the range holds.
func (r Range) Len() uint64 { return r.Hi - r.Lo + 1 }

// OriginVector is what a node has accounted for of one origin's bundles:
// every sequence number from 1 to Max except the Holes. A node numbers its
// bundles 1, 2, 3..., so a node that has seen everything an origin made up
// to Max has no holes, but for the numbers the origin never used (a seal
// that failed after taking its number, a restore's floor): every node
// holds those as the same holes.
type OriginVector struct {
	Origin bundle.NodeID
	Max    uint64
	Holes  []Range // ascending, disjoint, each within [1, Max-1]
}

// Has reports whether seq is accounted for.
func (o *OriginVector) Has(seq uint64) bool {
	if seq == 0 || seq > o.Max {
		return false
	}
	_, found := slices.BinarySearchFunc(o.Holes, seq, func(r Range, s uint64) int {
		switch {
		case r.Hi < s:
			return -1
		case r.Lo > s:
			return 1
		}
		return 0
	})
	return !found
}

// Count returns how many bundles of the origin are accounted for.
func (o *OriginVector) Count() uint64 {
	n := o.Max
	for _, h := range o.Holes {
		n -= h.Len()
	}
	return n
}

// Vector is a node's version vector: per origin, the bundles it has
// accounted for, sorted by origin. Two nodes with equal vectors need
// nothing from each other; the [Vector.Digest] of a vector tells them so
// in 16 bytes.
//
// A bundle is accounted for when the node has seen it (made it, applied
// it, carries it, or saw it delivered or expired) or has learned of it
// from a peer and decided it does not need it: see [Node.Know].
// Bundles numbered 0 are not part of any vector.
type Vector []OriginVector

// Origin returns the vector of one origin, or nil.
func (v Vector) Origin(id bundle.NodeID) *OriginVector {
	i, ok := slices.BinarySearchFunc(v, id, func(o OriginVector, id bundle.NodeID) int {
		return compareNodeID(o.Origin, id)
	})
	if !ok {
		return nil
	}
	return &v[i]
}

// Count returns how many bundles the vector accounts for.
func (v Vector) Count() uint64 {
	var n uint64
	for i := range v {
		n += v[i].Count()
	}
	return n
}

// Digest returns a 16-byte digest of the vector: SHA-256, cut to 16
// bytes, of "ferry-vector-1" followed by each origin in order (its 32-byte
// ID, its max as 8 bytes big-endian, its hole count as a uvarint, and each
// hole's bounds as 8 bytes big-endian each).
func (v Vector) Digest() [16]byte {
	h := sha256.New()
	h.Write([]byte("ferry-vector-1"))
	var b []byte
	for _, o := range v {
		b = append(b[:0], o.Origin[:]...)
		b = binary.BigEndian.AppendUint64(b, o.Max)
		b = binary.AppendUvarint(b, uint64(len(o.Holes)))
		for _, r := range o.Holes {
			b = binary.BigEndian.AppendUint64(b, r.Lo)
			b = binary.BigEndian.AppendUint64(b, r.Hi)
		}
		h.Write(b)
	}
	var d [16]byte
	copy(d[:], h.Sum(nil))
	return d
}

// VectorOf builds a vector from (origin, seq) pairs in any order,
// repeats allowed. Seq 0 is ignored.
func VectorOf(items map[bundle.NodeID][]uint64) Vector {
	v := make(Vector, 0, len(items))
	for origin, seqs := range items {
		seqs = slices.Clone(seqs)
		slices.Sort(seqs)
		var b vectorBuilder
		b.start(origin)
		for _, s := range seqs {
			b.add(s)
		}
		if o, ok := b.finish(); ok {
			v = append(v, o)
		}
	}
	slices.SortFunc(v, func(a, b OriginVector) int { return compareNodeID(a.Origin, b.Origin) })
	return v
}

// vectorBuilder folds the ascending seqs of one origin into an OriginVector.
type vectorBuilder struct {
	o    OriginVector
	prev uint64
}

func (b *vectorBuilder) start(origin bundle.NodeID) {
	b.o = OriginVector{Origin: origin}
	b.prev = 0
}

func (b *vectorBuilder) add(seq uint64) {
	if seq <= b.prev {
		return // a repeat, or seq 0
	}
	if seq > b.prev+1 {
		b.o.Holes = append(b.o.Holes, Range{Lo: b.prev + 1, Hi: seq - 1})
	}
	b.prev = seq
	b.o.Max = seq
}

func (b *vectorBuilder) finish() (OriginVector, bool) { return b.o, b.o.Max > 0 }

func compareNodeID(a, b bundle.NodeID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Vector returns the node's version vector. A session calls [Node.Held]
// first, so that what waits for a contact is sealed and counted.
func (n *Node) Vector(ctx context.Context) (Vector, error) {
	pol, err := n.Policy(ctx)
	if err != nil {
		return nil, err
	}
	seqs := map[bundle.NodeID][]uint64{}
	rows, err := n.db.QueryContext(ctx, `SELECT source, seq FROM bundles WHERE seq > 0 ORDER BY source, seq`)
	if err != nil {
		return nil, fmt.Errorf("node: vector: %w", err)
	}
	for rows.Next() {
		var src []byte
		var seq uint64
		if err := rows.Scan(&src, &seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("node: vector: %w", err)
		}
		o := bundle.NodeID(src)
		seqs[o] = append(seqs[o], seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node: vector: %w", err)
	}
	if err := n.knownSeqs(ctx, seqs); err != nil {
		return nil, err
	}
	declined, err := n.queryKnown(ctx, `SELECT source, seq, dest_type, dest, expires, reason FROM known_bundles
		WHERE reason = ?`, string(KnownDeclined))
	if err != nil {
		return nil, err
	}
	for _, k := range declined {
		if k.Seq > 0 && pol.stillKnown(&k) {
			seqs[k.Source] = append(seqs[k.Source], k.Seq)
		}
	}
	return VectorOf(seqs), nil
}

// Entry is a bundle a node has accounted for, as a session describes it
// to a peer that lacks it.
type Entry struct {
	Source   bundle.NodeID
	Seq      uint64
	ID       bundle.ID // zero for a bundle known only by its number
	State    string    // outbound, carry, applied, delivered, expired, or known
	Reason   KnownReason
	Kind     bundle.Kind
	Priority uint8
	Dest     bundle.Destination
	Created  time.Time
	Expires  time.Time // the zero time means never
	Size     int64
}

// Entry states besides the bundle states of docs/node.md.
const (
	// StateKnown marks a bundle the node knows of but decided not to take.
	StateKnown = "known"
)

// Available reports whether the node holds the bundle's body and may
// hand it on.
func (e *Entry) Available() bool { return e.State == "outbound" || e.State == "carry" }

// Entries lists what the node has accounted for of origin's bundles
// numbered lo to hi, ascending. A bundle both seen and known is listed as
// seen.
func (n *Node) Entries(ctx context.Context, origin bundle.NodeID, lo, hi uint64) ([]Entry, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT seq, id, state, kind, priority, dest_type, dest, created, expires, size
		FROM bundles WHERE source = ? AND seq BETWEEN ? AND ? ORDER BY seq`, origin[:], lo, hi)
	if err != nil {
		return nil, fmt.Errorf("node: entries: %w", err)
	}
	var out []Entry
	for rows.Next() {
		e := Entry{Source: origin}
		var id, dest []byte
		var created, expires int64
		if err := rows.Scan(&e.Seq, &id, &e.State, &e.Kind, &e.Priority, &e.Dest.Type, &dest, &created, &expires, &e.Size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("node: entries: %w", err)
		}
		e.ID, e.Dest.ID = bundle.ID(id), [32]byte(dest)
		e.Created = time.Unix(created, 0).UTC()
		if expires != 0 {
			e.Expires = time.Unix(expires, 0).UTC()
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node: entries: %w", err)
	}
	pol, err := n.Policy(ctx)
	if err != nil {
		return nil, err
	}
	known, err := n.knownRange(ctx, origin, lo, hi)
	if err != nil {
		return nil, err
	}
	for _, k := range known {
		if !pol.stillKnown(&k) {
			continue
		}
		if _, dup := slices.BinarySearchFunc(out, k.Seq, func(e Entry, s uint64) int { return cmpU64(e.Seq, s) }); dup {
			continue
		}
		out = append(out, Entry{Source: k.Source, Seq: k.Seq, State: StateKnown, Reason: k.Reason, Dest: k.Dest, Expires: k.Expires})
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmpU64(a.Seq, b.Seq) })
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Policy is a snapshot of what the node takes in: the same rules as
// [Node.Ingest], for deciding before a bundle's bytes travel.
type Policy struct {
	self    bundle.NodeID
	trusted map[bundle.NodeID]bool
	// introduced are the nodes an announcement in the directory names:
	// their public bundles (announcements) are taken in (announce.go).
	introduced map[bundle.NodeID]bool
	now        time.Time
	quota      *carryQuota
}

// Policy returns the node's current policy.
func (n *Node) Policy(ctx context.Context) (*Policy, error) {
	ps, err := n.Peers(ctx)
	if err != nil {
		return nil, err
	}
	p := &Policy{self: n.ID(), trusted: make(map[bundle.NodeID]bool, len(ps)), now: n.now()}
	for _, peer := range ps {
		p.trusted[peer.ID] = true
	}
	if p.introduced, err = n.introduced(ctx); err != nil {
		return nil, err
	}
	if p.quota, err = n.carryQuota(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Trusts reports whether id is this node or one of its trusted peers.
func (p *Policy) Trusts(id bundle.NodeID) bool { return id == p.self || p.trusted[id] }

// Accepts returns nil if the node would take in a bundle from source to
// dest expiring at expires, or the reason it would refuse it: an error
// wrapping [ErrUnknownSigner], [ErrCannotCarry] or [ErrExpired].
func (p *Policy) Accepts(source bundle.NodeID, dest bundle.Destination, expires time.Time) error {
	if !p.Trusts(source) && !(dest.Type == bundle.DestEveryone && p.introduced[source]) {
		return fmt.Errorf("%w %s", ErrUnknownSigner, source.Short())
	}
	if !expires.IsZero() && !p.now.Before(expires) {
		return fmt.Errorf("%w at %s", ErrExpired, expires.Format("2006-01-02 15:04:05Z"))
	}
	if dest.Type == bundle.DestNode && !p.Trusts(bundle.NodeID(dest.ID)) {
		return fmt.Errorf("%w (%s)", ErrCannotCarry, bundle.NodeID(dest.ID).Short())
	}
	return nil
}

// ForSelf reports whether a bundle to dest is for this node.
func (p *Policy) ForSelf(dest bundle.Destination) bool {
	return dest.Type == bundle.DestNode && bundle.NodeID(dest.ID) == p.self
}

// stillKnown reports whether a known bundle still counts as accounted
// for: one declined by policy counts only while the policy declines it.
func (p *Policy) stillKnown(k *Known) bool {
	if k.Reason != KnownDeclined {
		return true
	}
	err := p.Accepts(k.Source, k.Dest, time.Time{})
	return errors.Is(err, ErrUnknownSigner) || errors.Is(err, ErrCannotCarry)
}
