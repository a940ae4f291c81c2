package node

import (
	"context"
	"database/sql"
	"time"

	"ferry/bundle"
)

// Holds returns the IDs of every unexpired bundle this node has: made,
// applied or held for carrying. A carrier tells others from it what this
// node no longer needs, and what its destination has received.
func (n *Node) Holds(ctx context.Context) ([]bundle.ID, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT id FROM bundles WHERE state != 'expired' AND (expires = 0 OR expires > ?) ORDER BY id`,
		n.now().Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []bundle.ID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		ids = append(ids, bundle.ID(b))
	}
	return ids, rows.Err()
}

// Wants returns the nodes this node takes bundles for: itself, and every
// peer it can carry towards.
func (n *Node) Wants(ctx context.Context) ([]bundle.NodeID, error) {
	ps, err := n.Peers(ctx)
	if err != nil {
		return nil, err
	}
	ids := []bundle.NodeID{n.ID()}
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// Held lists, most urgent first, every unexpired bundle held for carrying,
// after sealing the messages waiting for a contact.
func (n *Node) Held(ctx context.Context) ([]BundleInfo, error) {
	if err := n.Expire(ctx); err != nil {
		return nil, err
	}
	if _, err := n.Seal(ctx); err != nil {
		return nil, err
	}
	rows, err := n.db.QueryContext(ctx, `SELECT id, source, seq, kind, priority, dest_type, dest, created, expires, size
		FROM bundles WHERE state IN ('outbound', 'carry') ORDER BY priority, created, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BundleInfo
	for rows.Next() {
		var b BundleInfo
		var id, src, dest []byte
		var created, expires int64
		if err := rows.Scan(&id, &src, &b.Seq, &b.Kind, &b.Priority, &b.Dest.Type, &dest, &created, &expires, &b.Size); err != nil {
			return nil, err
		}
		b.ID, b.Source, b.Dest.ID = bundle.ID(id), bundle.NodeID(src), [32]byte(dest)
		b.Created = time.Unix(created, 0).UTC()
		if expires != 0 {
			b.Expires = time.Unix(expires, 0).UTC()
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Settled drops the bodies of bundles held for carrying whose destination
// is known to hold them (from its signed inventory): nobody needs them
// from this node any more. The messages in this node's own bundles keep
// their state until the receipt arrives.
func (n *Node) Settled(ctx context.Context, ids []bundle.ID) error {
	var gone []bundle.ID
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `UPDATE bundles SET state = 'delivered' WHERE id = ? AND state IN ('outbound', 'carry')`, id[:])
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k > 0 {
				gone = append(gone, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range gone {
		if err := n.spool.remove(id); err != nil {
			n.log.Warn("removing settled bundle", "bundle", id, "err", err)
		}
	}
	return nil
}

// Seen reports whether the node has seen the bundle.
func (n *Node) Seen(ctx context.Context, id bundle.ID) (bool, error) { return n.seen(ctx, n.db, id) }

// Now returns the node's current time.
func (n *Node) Now() time.Time { return n.now() }
