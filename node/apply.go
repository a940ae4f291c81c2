package node

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"ferry/bundle"
)

// applier applies the records of one bundle for this node inside the
// ingest transaction.
type applier struct {
	ctx  context.Context
	n    *Node
	tx   *sql.Tx
	id   bundle.ID
	h    *bundle.Header
	now  int64
	stmt *sql.Stmt // inserts a full batch of messages
	// batch holds the arguments of messages not yet inserted.
	batch []any
	// users caches whether a local user exists.
	users map[string]bool

	okSeqs     []uint64 // messages applied, or already present
	failedSeqs []uint64 // messages for users this node does not have
	messages   int
	receipts   int
	delivered  []bundle.ID // our bundles confirmed by this bundle's receipts
	files      int         // attached files stored
	// placed lists file bodies this bundle put in the files folder; they
	// are removed again if the ingest does not commit.
	placed    []string
	committed bool
}

// insertBatch is how many messages one INSERT stores. SQLite opens a
// statement savepoint for every statement in a transaction, and the
// full-text index writes its pending terms out at each savepoint: one
// INSERT per message would rewrite the index once per message.
const insertBatch = 250

// insertColumns is the number of values insertMessages takes per message.
const insertColumns = 14

// insertMessages returns an INSERT of n messages.
func insertMessages(n int) string {
	const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	return `INSERT INTO messages
		(origin, seq, from_user, to_node, to_user, room, reply_origin, reply_seq, body, created, received_at, bundle, state, state_at)
		VALUES ` + strings.Repeat(row+", ", n-1) + row + `
		ON CONFLICT (origin, seq) DO NOTHING`
}

func newApplier(ctx context.Context, n *Node, tx *sql.Tx, id bundle.ID, h *bundle.Header) (*applier, error) {
	stmt, err := tx.PrepareContext(ctx, insertMessages(insertBatch))
	if err != nil {
		return nil, err
	}
	return &applier{ctx: ctx, n: n, tx: tx, id: id, h: h, now: n.now().UnixMilli(), stmt: stmt,
		batch: make([]any, 0, insertBatch*insertColumns), users: map[string]bool{}}, nil
}

// close releases the statement and, unless the ingest committed, removes
// the file bodies it placed: no other write can have started using them,
// since the ingest holds the node's write lock.
func (a *applier) close() {
	a.stmt.Close()
	if !a.committed {
		for _, p := range a.placed {
			os.Remove(p)
		}
	}
}

func (a *applier) record(typ bundle.RecordType, body []byte) error {
	switch typ {
	case bundle.RecordMessage:
		m, err := bundle.ParseMessage(body)
		if err != nil {
			return err
		}
		return a.message(m)
	case bundle.RecordReceipt:
		r, err := bundle.ParseReceipt(body)
		if err != nil {
			return err
		}
		return a.receipt(r)
	}
	return nil
}

func (a *applier) message(m *bundle.Message) error {
	if m.Room {
		// A room message belongs in a room this node shares with its
		// source; any other is refused like a message to no one.
		ok, err := roomAccepts(a.ctx, a.tx, m.To, a.h.Source)
		if err != nil {
			return err
		}
		if !ok {
			a.failedSeqs = append(a.failedSeqs, m.Seq)
			return nil
		}
	} else {
		ok, known := a.users[m.To]
		if !known {
			var err error
			if ok, err = userExists(a.ctx, a.tx, m.To); err != nil {
				return err
			}
			a.users[m.To] = ok
		}
		if !ok {
			a.failedSeqs = append(a.failedSeqs, m.Seq)
			return nil
		}
	}
	var replyOrigin []byte
	var replySeq any
	if m.ReplyTo != nil {
		replyOrigin, replySeq = m.ReplyTo.Node[:], m.ReplyTo.Seq
	}
	self := a.n.ID()
	a.batch = append(a.batch, a.h.Source[:], m.Seq, m.From, self[:], m.To, m.Room,
		replyOrigin, replySeq, m.Body, m.Created.UnixMilli(), a.now, a.id[:], StateReceived, a.now)
	a.okSeqs = append(a.okSeqs, m.Seq)
	if len(a.batch) == insertBatch*insertColumns {
		return a.flush()
	}
	return nil
}

// flush inserts the messages of the batch.
func (a *applier) flush() error {
	if len(a.batch) == 0 {
		return nil
	}
	var res sql.Result
	var err error
	if n := len(a.batch) / insertColumns; n == insertBatch {
		res, err = a.stmt.ExecContext(a.ctx, a.batch...)
	} else {
		res, err = a.tx.ExecContext(a.ctx, insertMessages(n), a.batch...)
	}
	if err != nil {
		return fmt.Errorf("node: store messages: %w", err)
	}
	k, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("node: store messages: %w", err)
	}
	a.messages += int(k)
	clear(a.batch)
	a.batch = a.batch[:0]
	return nil
}

// receipt applies news of one of this node's bundles. Only the bundle's
// destination may report on it.
func (a *applier) receipt(r *bundle.Receipt) error {
	if err := a.flush(); err != nil { // the messages before it first
		return err
	}
	self := a.n.ID()
	var dest []byte
	var state string
	err := a.tx.QueryRowContext(a.ctx, `SELECT dest, state FROM bundles WHERE id = ? AND source = ?`,
		r.Bundle[:], self[:]).Scan(&dest, &state)
	if errors.Is(err, sql.ErrNoRows) {
		a.n.log.Info("receipt for an unknown bundle", "bundle", r.Bundle)
		return nil
	}
	if err != nil {
		return err
	}
	if bundle.NodeID(dest) != a.h.Source {
		a.n.log.Warn("receipt from a node that is not the bundle's destination", "bundle", r.Bundle, "from", a.h.Source)
		return nil
	}
	a.receipts++
	// A state only moves forward: a late "delivered" does not undo "read".
	var newState, from string
	switch r.State {
	case bundle.ReceiptDelivered:
		newState, from = StateDelivered, `'queued', 'carried'`
	case bundle.ReceiptRead:
		newState, from = StateRead, `'queued', 'carried', 'delivered'`
	case bundle.ReceiptFailed:
		newState, from = StateFailed, `'queued', 'carried'`
	}
	q := `UPDATE messages SET state = ?, state_at = ?, reason = NULLIF(?, '')
		WHERE bundle = ? AND origin = ? AND state IN (` + from + `)`
	args := []any{newState, r.At.UnixMilli(), r.Reason, r.Bundle[:], self[:]}
	if len(r.Seqs) == 0 {
		if _, err := a.tx.ExecContext(a.ctx, q, args...); err != nil {
			return err
		}
	} else {
		stmt, err := a.tx.PrepareContext(a.ctx, q+` AND seq = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range r.Seqs {
			if _, err := stmt.ExecContext(a.ctx, append(args, s)...); err != nil {
				return err
			}
		}
	}
	if state == "outbound" {
		if _, err := a.tx.ExecContext(a.ctx, `UPDATE bundles SET state = 'delivered' WHERE id = ?`, r.Bundle[:]); err != nil {
			return err
		}
		a.delivered = append(a.delivered, r.Bundle)
	}
	return nil
}

// finish queues the receipts this bundle's messages call for.
func (a *applier) finish() error {
	if err := a.flush(); err != nil {
		return err
	}
	now := a.n.now()
	queue := func(r *bundle.Receipt) error {
		body, err := r.AppendBinary(nil)
		if err != nil {
			return err
		}
		_, err = a.tx.ExecContext(a.ctx, `INSERT INTO pending_receipts (dest, body) VALUES (?, ?)`, a.h.Source[:], body)
		return err
	}
	if len(a.okSeqs) > 0 {
		r := &bundle.Receipt{Bundle: a.id, State: bundle.ReceiptDelivered, At: now}
		if len(a.failedSeqs) > 0 {
			r.Seqs = ascending(a.okSeqs)
		}
		if err := queue(r); err != nil {
			return err
		}
	}
	if len(a.failedSeqs) > 0 {
		r := &bundle.Receipt{Bundle: a.id, State: bundle.ReceiptFailed, At: now,
			Seqs: ascending(a.failedSeqs), Reason: "no such user or shared room at " + a.n.name}
		if err := queue(r); err != nil {
			return err
		}
	}
	return nil
}

// ascending returns the numbers sorted, without repeats.
func ascending(s []uint64) []uint64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// recordFault wraps an error met while reading a record's bytes: the
// bundle is damaged or lies, and is refused.
type recordFault struct{ err error }

func (e *recordFault) Error() string { return e.err.Error() }
func (e *recordFault) Unwrap() error { return e.err }

// RecordError marks err, met while reading a record's bytes through the
// body a RecordHandler was given, as the bundle's fault: Ingest refuses
// the bundle with it rather than failing as if the store had.
func RecordError(err error) error { return &recordFault{err} }

// faultReader remembers the first read error of the record it reads, so
// that a failed copy can be blamed on the bundle or on the disk.
type faultReader struct {
	r   io.Reader
	err error
}

func (f *faultReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}

// attachment applies a RecordAttachment of size bytes read from body: the
// file of a message of this bundle. Its bytes are hashed as they are
// written and must match the header's hash; a body already stored is kept
// once. A file for a message that was refused, or that has it already, is
// skipped.
func (a *applier) attachment(body io.Reader, size uint64) error {
	fr := &faultReader{r: body}
	head := make([]byte, min(size, bundle.MaxAttachmentHeader))
	if _, err := io.ReadFull(fr, head); err != nil {
		return &recordFault{err}
	}
	h, k, err := bundle.ParseAttachmentHeader(head)
	if err != nil {
		return err
	}
	if uint64(k)+h.Size != size {
		return &bundle.FormatError{Field: "attachment", Reason: fmt.Sprintf("record of %d bytes for a file of %d", size, h.Size)}
	}
	if !slices.Contains(a.okSeqs, h.Seq) {
		return nil // its message was refused, or is not in this bundle
	}
	if err := a.flush(); err != nil { // its message first
		return err
	}
	var msg int64
	if err := a.tx.QueryRowContext(a.ctx, `SELECT id FROM messages WHERE origin = ? AND seq = ?`, a.h.Source[:], h.Seq).Scan(&msg); err != nil {
		return fmt.Errorf("node: attachment of message %d: %w", h.Seq, err)
	}
	hash := hex.EncodeToString(h.Hash[:])
	var dup bool
	if err := a.tx.QueryRowContext(a.ctx, `SELECT EXISTS (SELECT 1 FROM attachments WHERE message = ? AND hash = ? AND name = ?)`,
		msg, hash, CleanFileName(h.Name)).Scan(&dup); err != nil {
		return err
	}
	if dup {
		return nil
	}
	blob, err := a.n.StageBlob(io.MultiReader(bytes.NewReader(head[k:]), fr), int64(h.Size))
	if fr.err != nil {
		blob.Discard()
		return &recordFault{fr.err}
	}
	if err != nil {
		return err
	}
	if blob.Size != int64(h.Size) || blob.Hash != hash {
		blob.Discard()
		return &bundle.FormatError{Field: "attachment", Reason: fmt.Sprintf("file %q does not match its SHA-256", h.Name)}
	}
	dst := a.n.blobPath(hash)
	if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
		a.placed = append(a.placed, dst)
	}
	if err := a.n.commitBlob(a.ctx, a.tx, blob); err != nil {
		blob.Discard()
		return err
	}
	if _, err := a.tx.ExecContext(a.ctx, `INSERT INTO attachments (message, name, hash, size, type) VALUES (?, ?, ?, ?, ?)`,
		msg, CleanFileName(h.Name), hash, int64(h.Size), cleanType(h.Type)); err != nil {
		return err
	}
	a.files++
	return nil
}
