package archive

import (
	"context"
	"crypto/sha256"
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
	// Patch-from (a delta against a snapshot the peer provably holds):
	BaseVersion uint64 `json:",omitempty"` // the version the delta is encoded against; 0: none
	Rebuilt     int    `json:",omitempty"` // chunks the peer rebuilds from the delta instead of receiving them
	Patches     int    `json:",omitempty"` // files sent as zstd patches against their previous version
	Literals    int    `json:",omitempty"` // files sent whole inside the delta (new files)
	PatchBytes  int64  `json:",omitempty"` // bytes of those patches and literals
	DeltaBytes  int    `json:",omitempty"` // the delta record (compressed manifest + patches)
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
	held, proven, err := peerHolds(ctx, n, peer)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return nil, err
	}
	rep := &SendReport{ManifestBytes: len(body), TreeBytes: m.Size()}
	full := body
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
	// Patch-from: against the newest other snapshot of the item whose
	// every chunk the peer provably holds.
	var rebuilt []bundle.ArchiveChunkRef
	last := bundle.RecordArchiveManifest
	if base, baseBody, err := provenBase(ctx, n, m, proven); err != nil {
		return nil, err
	} else if base != nil {
		p, err := planDelta(st, m, base, baseBody, body, need)
		if err != nil {
			return nil, fmt.Errorf("archive: send: %w", err)
		}
		if len(p.record) <= bundle.DefaultMaxRecordSize {
			need, rebuilt, body, last = p.raw, p.rebuilt, p.record, bundle.RecordArchiveDelta
			rep.BaseVersion, rep.Rebuilt, rep.Patches, rep.Literals = base.Version, len(p.rebuilt), p.patches, p.literal
			rep.PatchBytes, rep.DeltaBytes = p.bytes, len(p.record)
		}
	}
	for first := true; first || len(need) > 0; first = false {
		var group []bundle.ArchiveChunkRef
		var size int64
		for len(need) > 0 && len(group) < deltaRecordBudget && size+int64(need[0].Size) <= deltaContentBudget {
			group, size, need = append(group, need[0]), size+int64(need[0].Size), need[1:]
		}
		final := len(need) == 0
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
			if final {
				return w.WriteRecord(last, body)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("archive: send: %w", err)
		}
		if final {
			// The peer will hold the rebuilt chunks and the manifest (noted
			// by the SHA-256 of its encoding, the name a delta gives a base).
			group = append(group, rebuilt...)
			group = append(group, bundle.ArchiveChunkRef{Hash: sha256.Sum256(full)})
		}
		if err := noteSent(ctx, n, peer, id, group); err != nil {
			return rep, err
		}
		rep.Bundles++
		rep.Chunks += len(group)
		if final {
			rep.Chunks -= len(rebuilt) + 1
		}
		rep.ChunkBytes += size
		rep.BundleBytes += bsize
	}
	return rep, nil
}

// peerHolds returns the chunks peer holds or was sent in a live bundle,
// and those it provably holds: it sent them (or a manifest naming them)
// to this node, or its receipt says the bundle that carried them arrived.
func peerHolds(ctx context.Context, n *node.Node, peer bundle.NodeID) (held, proven map[[32]byte]bool, err error) {
	rows, err := n.DB().QueryContext(ctx, `SELECT hash, bundle IS NULL OR
			EXISTS (SELECT 1 FROM bundles b WHERE b.id = c.bundle AND b.state = 'delivered')
		FROM archive_peer_chunks c WHERE peer = ? AND (bundle IS NULL OR
		EXISTS (SELECT 1 FROM bundles b WHERE b.id = c.bundle AND b.state IN ('outbound', 'delivered')))`, peer[:])
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	held, proven = map[[32]byte]bool{}, map[[32]byte]bool{}
	for rows.Next() {
		var h []byte
		var p bool
		if err := rows.Scan(&h, &p); err != nil {
			return nil, nil, err
		}
		held[[32]byte(h)] = true
		if p {
			proven[[32]byte(h)] = true
		}
	}
	return held, proven, rows.Err()
}

// provenBase returns the newest complete snapshot of m's item, other than
// m, whose manifest and every chunk the peer provably holds, and its
// encoding; nil if there is none. (A peer holds a manifest it sent, or
// that this node sent in a bundle it confirmed; archive_peer_chunks names
// it by the SHA-256 of its encoding.)
func provenBase(ctx context.Context, n *node.Node, m *bundle.ArchiveManifest, proven map[[32]byte]bool) (*bundle.ArchiveManifest, []byte, error) {
	rows, err := n.DB().QueryContext(ctx, `SELECT body FROM archive_manifests WHERE item = ? AND complete = 1
		AND NOT (version = ? AND origin = ?) ORDER BY version DESC, created DESC`, m.Item[:], m.Version, m.Origin[:])
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
next:
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, nil, err
		}
		if !proven[sha256.Sum256(body)] {
			continue
		}
		b, err := bundle.ParseArchiveManifest(body)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range b.Chunks {
			if !proven[c.Hash] {
				continue next
			}
		}
		return b, body, nil
	}
	return nil, nil, rows.Err()
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
