package archive

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"

	"ferry/bundle"
	"ferry/node"
)

func init() {
	node.RegisterRecordHandler(bundle.RecordArchiveChunk, applyChunk)
	node.RegisterRecordHandler(bundle.RecordArchiveManifest, applyManifest)
	node.RegisterRecordHandler(bundle.RecordArchiveDelta, applyDelta)
	node.RegisterCommitHook(flushChunks)
}

// flushChunks makes the chunks an ingest buffered durable and indexed
// before the ingest commits.
func flushChunks(ctx context.Context, n *node.Node, tx *sql.Tx) error {
	if st := cachedStore(storeDir(n.Dir())); st != nil {
		if err := st.Flush(); err != nil {
			return err
		}
	}
	v, ok := batches.LoadAndDelete(n.Dir())
	if !ok || v.(*ingestBatch).tx != tx || len(v.(*ingestBatch).proven) == 0 {
		return nil
	}
	return noteProven(ctx, tx, v.(*ingestBatch).source, v.(*ingestBatch).proven)
}

// noteProven records that peer holds the chunks.
func noteProven(ctx context.Context, tx *sql.Tx, peer bundle.NodeID, hashes [][32]byte) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO archive_peer_chunks (peer, hash, bundle) VALUES (?, ?, NULL)
		ON CONFLICT (peer, hash) DO UPDATE SET bundle = NULL`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, h := range hashes {
		if _, err := stmt.ExecContext(ctx, peer[:], h[:]); err != nil {
			return err
		}
	}
	return nil
}

// chunkBufs holds the buffers received chunks are read into: one chunk
// at a time, at most 8 MiB, without a new allocation per chunk.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, bundle.MaxArchiveChunkSize+1); return &b }}

// applyChunk stores one chunk of a bundle for this node. A chunk written
// by a bundle that is then refused stays in the store: it is addressed by
// its hash, so it can do no harm, and a later delta need not carry it.
func applyChunk(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header, body io.Reader) error {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	k, err := io.ReadFull(body, (*bp)[:bundle.MaxArchiveChunkSize+1])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	data := (*bp)[:k]
	if len(data) == 0 || len(data) > bundle.MaxArchiveChunkSize {
		return &bundle.LimitError{What: "archive chunk size", Got: uint64(len(data)), Limit: bundle.MaxArchiveChunkSize}
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return err
	}
	ref, _, err := st.Put(data)
	if err != nil {
		return err
	}
	b := batchFor(n, tx)
	b.source = h.Source
	b.proven = append(b.proven, ref.Hash)
	if !b.acked {
		b.acked = true
		return acknowledge(ctx, n, tx, h)
	}
	return nil
}

// ingestBatch collects, for the bundle being applied to a node, the
// chunks its sender proved it holds; flushChunks writes them in one go
// before the ingest commits. Ingest is serialized per node, so one batch
// per node suffices; a batch of a rolled-back ingest is dropped when the
// next one starts.
type ingestBatch struct {
	tx     *sql.Tx
	source bundle.NodeID
	proven [][32]byte
	acked  bool
}

var batches sync.Map // node data dir → *ingestBatch

func batchFor(n *node.Node, tx *sql.Tx) *ingestBatch {
	if v, ok := batches.Load(n.Dir()); ok {
		if b := v.(*ingestBatch); b.tx == tx {
			return b
		}
	}
	b := &ingestBatch{tx: tx}
	batches.Store(n.Dir(), b)
	return b
}

// applyManifest verifies and stores a snapshot, marks it complete when
// every file rebuilt from the store matches it, and notes that the sender
// holds its chunks.
func applyManifest(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header, body io.Reader) error {
	b, err := io.ReadAll(body) // bounded by the bundle's record size limit
	if err != nil {
		return err
	}
	m, err := bundle.ParseArchiveManifest(b)
	if err != nil {
		return err
	}
	return acceptManifest(ctx, n, tx, h, m, nil)
}

// acceptManifest checks m's signature, lets before (if not nil) add
// chunks to the store, stores m, complete when every file rebuilt from
// the store matches it, and notes that the sender holds its chunks.
func acceptManifest(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header, m *bundle.ArchiveManifest,
	before func(st *Store) error) error {
	if err := m.Verify(); err != nil {
		return &bundle.FormatError{Field: "archive manifest", Reason: err.Error()}
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return err
	}
	if before != nil {
		if err := before(st); err != nil {
			return err
		}
	}
	if err := st.Flush(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	verr := verify(st, m) // a missing chunk leaves the snapshot incomplete, not refused
	if err := saveManifest(ctx, tx, m, verr == nil, n.Now()); err != nil {
		return err
	}
	// The sender holds the manifest too: a later delta may use it as base.
	body, err := m.AppendBinary(nil)
	if err != nil {
		return err
	}
	hashes := make([][32]byte, len(m.Chunks), len(m.Chunks)+1)
	for i, c := range m.Chunks {
		hashes[i] = c.Hash
	}
	if err := noteProven(ctx, tx, h.Source, append(hashes, sha256.Sum256(body))); err != nil {
		return err
	}
	return acknowledge(ctx, n, tx, h)
}

// applyDelta decodes a new snapshot against the base snapshot it names
// (this node must hold it), rebuilds from the base and the delta's file
// patches the chunks it lacks, and accepts the snapshot like a manifest.
func applyDelta(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header, body io.Reader) error {
	b, err := io.ReadAll(body) // bounded by the bundle's record size limit
	if err != nil {
		return err
	}
	d, err := bundle.ParseArchiveDelta(b)
	if err != nil {
		return err
	}
	baseBody, err := manifestByHash(ctx, tx, d.Item, d.Base)
	if err != nil {
		return err
	}
	base, err := bundle.ParseArchiveManifest(baseBody)
	if err != nil {
		return err
	}
	mb, err := decodeAgainst(baseBody, d.Manifest, bundle.DefaultMaxRecordSize)
	if err != nil {
		return err
	}
	m, err := bundle.ParseArchiveManifest(mb)
	if err != nil {
		return err
	}
	if m.Item != d.Item {
		return &bundle.FormatError{Field: "archive delta", Reason: "the manifest is of another item"}
	}
	return acceptManifest(ctx, n, tx, h, m, func(st *Store) error { return applyDeltaFiles(st, m, base, d) })
}

// manifestByHash returns the encoding of the snapshot of item whose
// SHA-256 is sum. Not holding it refuses the delta: its sender believed
// this node holds it (this node lost it, e.g. restored an old backup).
func manifestByHash(ctx context.Context, tx *sql.Tx, item [16]byte, sum [32]byte) ([]byte, error) {
	rows, err := tx.QueryContext(ctx, `SELECT body FROM archive_manifests WHERE item = ?`, item[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		if sha256.Sum256(body) == sum {
			return body, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return nil, &bundle.FormatError{Field: "archive delta", Reason: fmt.Sprintf("base snapshot %x of item %x is not held here", sum[:8], item)}
}

// acknowledge queues, once per bundle, a "delivered" receipt to its
// source, so that the source learns the chunks arrived.
func acknowledge(ctx context.Context, n *node.Node, tx *sql.Tx, h *bundle.Header) error {
	id := h.ID()
	res, err := tx.ExecContext(ctx, `INSERT INTO archive_received (bundle) VALUES (?) ON CONFLICT DO NOTHING`, id[:])
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return nil
	}
	r := &bundle.Receipt{Bundle: id, State: bundle.ReceiptDelivered, At: n.Now()}
	rb, err := r.AppendBinary(nil)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO pending_receipts (dest, body) VALUES (?, ?)`, h.Source[:], rb)
	return err
}
