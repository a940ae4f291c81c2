package archive

import (
	"context"
	"fmt"

	"ferry/bundle"
	"ferry/node"
)

// Bundle budget of a delta: well under every bundle limit (1 GiB bundle,
// 64 MiB record, 2^20 records), even for incompressible chunks. Variables
// so that tests can split small deltas.
var (
	deltaContentBudget int64 = 256 << 20
	deltaRecordBudget        = 100_000
)

// SendReport says what Send queued.
type SendReport struct {
	Bundles       int
	Chunks        int    // chunks queued
	ChunkBytes    int64  // their raw bytes
	BundleBytes   int64  // bytes of the bundles on the wire
	ManifestBytes int    // the manifest record
	TreeBytes     uint64 // the size of the snapshot's files
	Held          int    // chunks not sent: the peer holds them or was sent them
}

// Send queues for peer, as archive bundles, the newest snapshot of item:
// the manifest plus only the chunks the peer lacks. A chunk counts as
// held by the peer when the peer sent it to this node, or sent a manifest
// naming it, or when this node sent it in a bundle that has not expired
// (the receipt for it turns the bundle "delivered"). The manifest travels
// in the last bundle, after its chunks. Carry the bundles with any carrier
// (ferry export, usb sync, sync).
func Send(ctx context.Context, n *node.Node, item [16]byte, peer bundle.NodeID) (*SendReport, error) {
	m, err := Latest(ctx, n, item)
	if err != nil {
		return nil, err
	}
	body, err := m.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if len(body) > bundle.DefaultMaxRecordSize {
		return nil, &bundle.LimitError{What: "archive manifest record", Got: uint64(len(body)), Limit: bundle.DefaultMaxRecordSize}
	}
	held, err := peerHolds(ctx, n, peer)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return nil, err
	}
	rep := &SendReport{ManifestBytes: len(body), TreeBytes: m.Size()}
	var need []bundle.ArchiveChunkRef
	seen := map[[32]byte]bool{}
	for _, c := range m.Chunks {
		if seen[c.Hash] {
			continue
		}
		seen[c.Hash] = true
		if held[c.Hash] {
			rep.Held++
			continue
		}
		if !st.Has(c.Hash) {
			return nil, fmt.Errorf("%w: %x (this node's copy of the item is incomplete)", ErrChunkMissing, c.Hash)
		}
		need = append(need, c)
	}
	for first := true; first || len(need) > 0; first = false {
		var group []bundle.ArchiveChunkRef
		var size int64
		for len(need) > 0 && len(group) < deltaRecordBudget && size+int64(need[0].Size) <= deltaContentBudget {
			group, size, need = append(group, need[0]), size+int64(need[0].Size), need[1:]
		}
		last := len(need) == 0
		id, bsize, err := n.SealRecords(ctx, peer, bundle.KindArchive, node.PriorityArchive, 0, func(w *bundle.Writer) error {
			var buf []byte
			for _, c := range group {
				b, err := st.Get(c, buf)
				if err != nil {
					return err
				}
				buf = b
				if err := w.WriteRecord(bundle.RecordArchiveChunk, b); err != nil {
					return err
				}
			}
			if last {
				return w.WriteRecord(bundle.RecordArchiveManifest, body)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("archive: send: %w", err)
		}
		if err := noteSent(ctx, n, peer, id, group); err != nil {
			return rep, err
		}
		rep.Bundles++
		rep.Chunks += len(group)
		rep.ChunkBytes += size
		rep.BundleBytes += bsize
	}
	return rep, nil
}

// peerHolds returns the chunks peer holds or was sent in a live bundle.
func peerHolds(ctx context.Context, n *node.Node, peer bundle.NodeID) (map[[32]byte]bool, error) {
	rows, err := n.DB().QueryContext(ctx, `SELECT hash FROM archive_peer_chunks c WHERE peer = ? AND (bundle IS NULL OR
		EXISTS (SELECT 1 FROM bundles b WHERE b.id = c.bundle AND b.state IN ('outbound', 'delivered')))`, peer[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := map[[32]byte]bool{}
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		held[[32]byte(h)] = true
	}
	return held, rows.Err()
}

func noteSent(ctx context.Context, n *node.Node, peer bundle.NodeID, id bundle.ID, chunks []bundle.ArchiveChunkRef) error {
	tx, err := n.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO archive_peer_chunks (peer, hash, bundle) VALUES (?, ?, ?)
		ON CONFLICT (peer, hash) DO UPDATE SET bundle = excluded.bundle WHERE bundle IS NOT NULL`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range chunks {
		if _, err := stmt.ExecContext(ctx, peer[:], c.Hash[:], id[:]); err != nil {
			return fmt.Errorf("archive: note sent chunks: %w", err)
		}
	}
	return tx.Commit()
}
