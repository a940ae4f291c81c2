package node

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"ferry/bundle"
)

// KnownReason says why a node did not take a bundle it knows of.
type KnownReason string

// Reasons for knowing a bundle without holding it. The values are stored.
const (
	// KnownDeclined: the node would refuse the bundle (an unknown signer,
	// or a destination it cannot carry towards). It counts as accounted
	// for only while that stays true: once the node trusts the signer or
	// the destination, it wants the bundle again.
	KnownDeclined KnownReason = "declined"
	// KnownDelivered: a peer reported that the bundle reached its
	// destination, so nobody needs it any more.
	KnownDelivered KnownReason = "delivered"
	// KnownExpired: the bundle expired before it got here.
	KnownExpired KnownReason = "expired"
)

// Known is a bundle a node knows of by its origin and number, without
// holding it.
type Known struct {
	Source  bundle.NodeID
	Seq     uint64
	Dest    bundle.Destination
	Expires time.Time // the zero time means never or unknown
	Reason  KnownReason
}

// Know records bundles the node learned of from a peer and does not need,
// so that they count in its [Vector] and two nodes that synced have equal
// vectors. A bundle the node has seen, or knows already, is left as it is.
// A bundle declined for this node itself is not recorded: it stays wanted
// until it expires.
func (n *Node) Know(ctx context.Context, ks []Known) error {
	if len(ks) == 0 {
		return nil
	}
	self := n.ID()
	at := n.now().UnixMilli()
	return n.withTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO known_bundles (source, seq, dest_type, dest, expires, reason, at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return fmt.Errorf("node: know: %w", err)
		}
		defer stmt.Close()
		for _, k := range ks {
			if k.Seq == 0 || k.Reason == KnownDeclined && k.Dest.Type == bundle.DestNode && bundle.NodeID(k.Dest.ID) == self {
				continue
			}
			var expires int64
			if !k.Expires.IsZero() {
				expires = k.Expires.Unix()
			}
			if _, err := stmt.ExecContext(ctx, k.Source[:], k.Seq, k.Dest.Type, k.Dest.ID[:], expires, string(k.Reason), at); err != nil {
				return fmt.Errorf("node: know: %w", err)
			}
		}
		return nil
	})
}

// knownSeqs adds the numbers of the bundles known for good (delivered or
// expired) to seqs, by origin.
func (n *Node) knownSeqs(ctx context.Context, seqs map[bundle.NodeID][]uint64) error {
	rows, err := n.db.QueryContext(ctx, `SELECT source, seq FROM known_bundles WHERE reason != ? AND seq > 0`, string(KnownDeclined))
	if err != nil {
		return fmt.Errorf("node: known bundles: %w", err)
	}
	defer rows.Close()
	var last bundle.NodeID
	var src []byte
	for rows.Next() {
		var seq uint64
		if err := rows.Scan(&src, &seq); err != nil {
			return fmt.Errorf("node: known bundles: %w", err)
		}
		if string(src) != string(last[:]) {
			last = bundle.NodeID(src)
		}
		seqs[last] = append(seqs[last], seq)
	}
	return rows.Err()
}

func (n *Node) knownRange(ctx context.Context, origin bundle.NodeID, lo, hi uint64) ([]Known, error) {
	return n.queryKnown(ctx, `SELECT source, seq, dest_type, dest, expires, reason FROM known_bundles
		WHERE source = ? AND seq BETWEEN ? AND ? ORDER BY seq`, origin[:], lo, hi)
}

func (n *Node) queryKnown(ctx context.Context, q string, args ...any) ([]Known, error) {
	rows, err := n.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("node: known bundles: %w", err)
	}
	defer rows.Close()
	var out []Known
	for rows.Next() {
		var k Known
		var src, dest []byte
		var expires int64
		var reason string
		if err := rows.Scan(&src, &k.Seq, &k.Dest.Type, &dest, &expires, &reason); err != nil {
			return nil, fmt.Errorf("node: known bundles: %w", err)
		}
		k.Source, k.Dest.ID, k.Reason = bundle.NodeID(src), [32]byte(dest), KnownReason(reason)
		if expires != 0 {
			k.Expires = time.Unix(expires, 0).UTC()
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
