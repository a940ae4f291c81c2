package node

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"ferry/bundle"
)

// Reasons a bundle is refused, besides the bundle package's own.
var (
	// ErrUnknownSigner means the bundle is signed by a node this node
	// does not trust. Nothing of it is decrypted or stored.
	ErrUnknownSigner = errors.New("signed by an unknown node")
	// ErrExpired means the bundle's expiry time has passed.
	ErrExpired = errors.New("expired")
	// ErrCannotCarry means the bundle is for a node this node neither is
	// nor knows, so it can neither read nor carry it.
	ErrCannotCarry = errors.New("addressed to a node this node does not know, so it cannot carry it")
)

// RefusedError reports a bundle that was refused. The store is exactly as
// it was before.
type RefusedError struct {
	ID     *bundle.ID // nil when the bundle was refused before its ID was known
	Reason error
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason.Error() }
func (e *RefusedError) Unwrap() error { return e.Reason }

// Status says what Ingest did with a bundle.
type Status string

// Ingest outcomes.
const (
	StatusApplied   Status = "applied"   // for this node: records applied
	StatusStored    Status = "stored"    // for another node: kept for carrying
	StatusDuplicate Status = "duplicate" // seen before: nothing done
)

// IngestResult describes an ingested bundle.
type IngestResult struct {
	ID       bundle.ID
	Header   bundle.Header
	Status   Status
	Messages int // messages applied (new ones only)
	Receipts int // receipts applied
}

// Ingest takes in one bundle from r: it verifies the signature and the
// signer, refuses what is expired or cannot be carried, deduplicates by ID,
// and then either applies the records of a bundle addressed to this node in
// one transaction or spools a bundle for another node. A refused bundle
// yields a *RefusedError and leaves the store as it was. Ingesting the
// same bundle twice is harmless.
func (n *Node) Ingest(ctx context.Context, r io.Reader) (IngestResult, error) {
	rd, err := bundle.NewReader(bufio.NewReaderSize(r, 256<<10), n.lim)
	if err != nil {
		return IngestResult{}, &RefusedError{Reason: err}
	}
	h, id := rd.Header(), rd.ID()
	res := IngestResult{ID: id, Header: h}
	refuse := func(err error) (IngestResult, error) { return res, &RefusedError{ID: &id, Reason: err} }

	if h.Kind == bundle.KindAnnounce { // public: trust by introduction (announce.go)
		return n.ingestAnnouncement(ctx, rd, res)
	}
	self := n.ID()
	if h.Source != self {
		if _, err := n.Peer(ctx, h.Source.String()); errors.Is(err, ErrUnknownPeer) {
			return refuse(fmt.Errorf("%w %s (add its card with 'ferry peer add' to accept it)", ErrUnknownSigner, h.Source.Short()))
		} else if err != nil {
			return res, err
		}
	}
	if h.Expired(n.now()) {
		return refuse(fmt.Errorf("%w at %s", ErrExpired, h.Expires.Format("2006-01-02 15:04:05Z")))
	}
	if seen, err := n.seen(ctx, n.db, id); err != nil {
		return res, err
	} else if seen {
		res.Status = StatusDuplicate
		return res, nil
	}
	if h.Dest.Type == bundle.DestNode && bundle.NodeID(h.Dest.ID) == self {
		return n.apply(ctx, rd, res)
	}
	if h.Dest.Type == bundle.DestNode {
		if _, err := n.Peer(ctx, bundle.NodeID(h.Dest.ID).String()); errors.Is(err, ErrUnknownPeer) {
			return refuse(fmt.Errorf("%w (%s)", ErrCannotCarry, bundle.NodeID(h.Dest.ID).Short()))
		} else if err != nil {
			return res, err
		}
	}
	if q, err := n.carryQuota(ctx); err != nil {
		return res, err
	} else if err := q.take(h.Source, rd.PayloadOffset()+int64(h.PayloadSize)); err != nil {
		return refuse(err)
	}
	return n.carry(ctx, rd, res)
}

func (n *Node) seen(ctx context.Context, q querier, id bundle.ID) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM bundles WHERE id = ?`, id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// carry spools a verified bundle for another node.
func (n *Node) carry(ctx context.Context, rd *bundle.Reader, res IngestResult) (IngestResult, error) {
	id := res.ID
	f, err := n.spool.create()
	if err != nil {
		return res, err
	}
	if _, err := f.Write(rd.Prefix()); err != nil {
		n.spool.discard(f)
		return res, fmt.Errorf("node: spool: %w", err)
	}
	size, err := io.Copy(f, rd.Payload())
	if err != nil {
		n.spool.discard(f)
		if isReadErr(err) {
			return res, &RefusedError{ID: &id, Reason: err}
		}
		return res, fmt.Errorf("node: spool: %w", err)
	}
	if err := n.spool.commit(f, id); err != nil {
		return res, err
	}
	size += int64(len(rd.Prefix()))
	err = n.withTx(ctx, func(tx *sql.Tx) error {
		if seen, err := n.seen(ctx, tx, id); err != nil || seen {
			return err
		}
		return insertBundle(ctx, tx, id, &res.Header, size, n.now().UnixMilli(), "carry")
	})
	if err != nil {
		return res, err
	}
	res.Status = StatusStored
	return res, nil
}

// isReadErr reports whether err came from reading the bundle (and so is a
// reason to refuse it) rather than from writing the spool.
func isReadErr(err error) bool {
	var le *bundle.LimitError
	var fe *bundle.FormatError
	return errors.Is(err, bundle.ErrPayloadHash) || errors.Is(err, bundle.ErrTruncated) ||
		errors.Is(err, bundle.ErrTrailingData) || errors.As(err, &le) || errors.As(err, &fe) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

func insertBundle(ctx context.Context, tx *sql.Tx, id bundle.ID, h *bundle.Header, size int64, at int64, state string) error {
	var expires int64
	if !h.Expires.IsZero() {
		expires = h.Expires.Unix()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO bundles
		(id, source, seq, kind, priority, dest_type, dest, created, expires, size, received_at, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id[:], h.Source[:], h.Seq, h.Kind, h.Priority, h.Dest.Type, h.Dest.ID[:],
		h.Created.Unix(), expires, size, at, state)
	return err
}

// apply decrypts a bundle for this node and applies all its records in one
// transaction, which commits only once the whole payload has verified.
func (n *Node) apply(ctx context.Context, rd *bundle.Reader, res IngestResult) (IngestResult, error) {
	id, h := res.ID, res.Header
	refuse := func(err error) (IngestResult, error) { return res, &RefusedError{ID: &id, Reason: err} }
	rr, err := rd.Open(n.id.Age)
	if err != nil {
		return refuse(err)
	}
	defer rr.Close()

	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	tx, err := n.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("node: begin: %w", err)
	}
	defer tx.Rollback()
	committed := false
	defer func() {
		if !committed {
			runRollbackHooks(n, tx)
		}
	}()
	if seen, err := n.seen(ctx, tx, id); err != nil {
		return res, err
	} else if seen {
		res.Status = StatusDuplicate
		return res, nil
	}
	ap, err := newApplier(ctx, n, tx, id, &h)
	if err != nil {
		return res, err
	}
	defer ap.close()
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return refuse(err)
		}
		if fn := recordHandler(rec.Type); fn != nil { // archive records (node/archivehook.go)
			if err := fn(ctx, n, tx, &h, rr); err != nil {
				var fe *bundle.FormatError
				var le *bundle.LimitError
				var rf *recordFault
				if errors.As(err, &fe) || errors.As(err, &le) || errors.As(err, &rf) {
					return refuse(err)
				}
				return res, err
			}
			continue
		}
		if rec.Type == bundle.RecordAttachment {
			if err := ap.attachment(rr, rec.Size); err != nil {
				var fe *bundle.FormatError
				var le *bundle.LimitError
				var rf *recordFault
				if errors.As(err, &fe) || errors.As(err, &le) || errors.As(err, &rf) {
					return refuse(err)
				}
				return res, err
			}
			continue
		}
		if rec.Type != bundle.RecordMessage && rec.Type != bundle.RecordReceipt {
			// A record type from a later version: skipped, so that old
			// nodes still take in what they understand.
			n.log.Info("skipping unknown record", "bundle", id, "type", rec.Type)
			continue
		}
		body, err := rr.Bytes()
		if err != nil {
			return refuse(err)
		}
		if err := ap.record(rec.Type, body); err != nil {
			// A record that does not parse, or parses over a limit, is
			// the bundle's fault: refuse it. Anything else is the store's.
			var fe *bundle.FormatError
			var le *bundle.LimitError
			if errors.As(err, &fe) || errors.As(err, &le) {
				return refuse(err)
			}
			return res, err
		}
	}
	if err := ap.finish(); err != nil {
		return res, err
	}
	if err := runCommitHooks(ctx, n, tx); err != nil {
		var fe *bundle.FormatError
		var le *bundle.LimitError
		if errors.As(err, &fe) || errors.As(err, &le) {
			return refuse(err) // a hook found the bundle's records wanting as a whole
		}
		return res, err
	}
	if err := insertBundle(ctx, tx, id, &h, int64(h.PayloadSize)+rd.PayloadOffset(), n.now().UnixMilli(), "applied"); err != nil {
		return res, err
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("node: commit: %w", err)
	}
	ap.committed, committed = true, true
	forgetVersion(ctx)
	for _, b := range ap.delivered {
		if err := n.spool.remove(b); err != nil {
			n.log.Warn("removing delivered bundle", "bundle", b, "err", err)
		}
	}
	res.Status = StatusApplied
	res.Messages, res.Receipts = ap.messages, ap.receipts
	return res, nil
}
