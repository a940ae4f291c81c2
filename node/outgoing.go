package node

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"ferry/bundle"
)

// BundleInfo describes a bundle the node holds for carrying.
type BundleInfo struct {
	ID       bundle.ID
	Source   bundle.NodeID
	Seq      uint64
	Kind     bundle.Kind
	Priority uint8
	Dest     bundle.Destination
	Created  time.Time
	Expires  time.Time
	Size     int64
}

// Outgoing lists, in the order to send them, the bundles to hand to peer
// at a contact: of the unexpired bundles the node holds for carrying that
// the peer did not make and that no receipt has settled yet, those the
// routing policy hands on ([Node.Plan]: bundles for the peer itself, and
// bundles it may carry on towards others). Messages waiting for a contact
// are sealed first.
func (n *Node) Outgoing(ctx context.Context, peer bundle.NodeID) ([]BundleInfo, error) {
	held, err := n.Held(ctx)
	if err != nil {
		return nil, err
	}
	out := held[:0]
	for _, b := range held {
		if b.Source != peer {
			out = append(out, b)
		}
	}
	return n.Plan(ctx, Contact{Peer: peer, Medium: "file"}, out)
}

// OpenBundle opens the stored body of a bundle held for carrying.
func (n *Node) OpenBundle(id bundle.ID) (*os.File, error) { return n.spool.open(id) }

// MarkCarried records that bundles were handed to peer by a carrier
// ("file", "usb", "tcp", ...): custody for routing, and the "carried"
// state of the messages in them. A store-carry medium with no peer
// present (a stick) passes the zero NodeID.
func (n *Node) MarkCarried(ctx context.Context, peer bundle.NodeID, carrier string, ids []bundle.ID) error {
	at := n.now().UnixMilli()
	return n.withTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO handoffs (bundle, peer, carrier, at) VALUES (?, ?, ?, ?)
				ON CONFLICT DO UPDATE SET carrier = excluded.carrier, at = excluded.at`, id[:], peer[:], carrier, at); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET state = 'carried', carrier = ?, state_at = ?
				WHERE bundle = ? AND state = 'queued'`, carrier, at, id[:]); err != nil {
				return err
			}
		}
		return n.spendCopies(ctx, tx, peer, ids)
	})
}

// Expire drops the bodies of carried bundles whose time has passed, and
// marks the messages in this node's own expired bundles as expired.
func (n *Node) Expire(ctx context.Context) error {
	now := n.now()
	var gone []bundle.ID
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM bundles
			WHERE state IN ('outbound', 'carry') AND expires != 0 AND expires <= ?`, now.Unix())
		if err != nil {
			return err
		}
		for rows.Next() {
			var id []byte
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			gone = append(gone, bundle.ID(id))
		}
		rows.Close()
		for _, id := range gone {
			if _, err := tx.ExecContext(ctx, `UPDATE bundles SET state = 'expired' WHERE id = ?`, id[:]); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET state = 'expired', state_at = ?
				WHERE bundle = ? AND state IN ('queued', 'carried')`, now.UnixMilli(), id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range gone {
		if err := n.spool.remove(id); err != nil {
			n.log.Warn("removing expired bundle", "bundle", id, "err", err)
		}
	}
	return nil
}

// Withdraw takes back bundles this node made that are still queued: they
// leave the spool and count as expired, so no carrier takes them any
// more. (One already carried may still arrive.) A command that queued
// part of a whole and then failed withdraws the part.
func (n *Node) Withdraw(ctx context.Context, ids []bundle.ID) error {
	self := n.ID()
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE bundles SET state = 'expired'
				WHERE id = ? AND state = 'outbound' AND source = ?`, id[:], self[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := n.spool.remove(id); err != nil {
			n.log.Warn("removing a withdrawn bundle", "bundle", id, "err", err)
		}
	}
	return nil
}

// ExportReport says what Export wrote.
type ExportReport struct {
	Written int   // bundles written
	Present int   // bundles already in the folder
	Bytes   int64 // bytes written
}

// Export writes every bundle that Outgoing lists for peer into dir, one
// file per bundle named <id>.bundle. Each file is written under a hidden
// temporary name, synced and renamed, so that a reader never sees half a
// bundle under a bundle's name.
func (n *Node) Export(ctx context.Context, peer bundle.NodeID, dir string) (ExportReport, error) {
	var rep ExportReport
	list, err := n.Outgoing(ctx, peer)
	if err != nil {
		return rep, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rep, fmt.Errorf("node: export: %w", err)
	}
	var done []bundle.ID
	for _, b := range list {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		dst := filepath.Join(dir, b.ID.String()+".bundle")
		if fi, err := os.Stat(dst); err == nil && fi.Size() == b.Size {
			rep.Present++
			done = append(done, b.ID)
			continue
		}
		if err := n.copyBundle(b.ID, dst); err != nil {
			return rep, err
		}
		rep.Written++
		rep.Bytes += b.Size
		done = append(done, b.ID)
	}
	if len(done) > 0 {
		if err := syncDir(dir); err != nil {
			return rep, err
		}
	}
	return rep, n.MarkCarried(ctx, peer, "file", done)
}

// copyBundle copies a spooled bundle to dst atomically.
func (n *Node) copyBundle(id bundle.ID, dst string) error {
	src, err := n.spool.open(id)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".part")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("node: export: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("node: export %s: %w", filepath.Base(dst), err)
	}
	if _, err := io.Copy(f, src); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: export: %w", err)
	}
	return nil
}

// IsTemporary reports whether a file name is one of ferry's temporary
// names (hidden, or ending in .part): a file being written, never a bundle.
func IsTemporary(name string) bool {
	return len(name) > 0 && name[0] == '.' || filepath.Ext(name) == ".part"
}

func timeMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
