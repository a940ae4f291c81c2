package node

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"sync"
	"time"

	"filippo.io/age"

	"ferry/bundle"
)

// RecordHandler applies one record of a type node itself does not know,
// from a bundle addressed to this node, inside the ingest transaction tx.
// body reads the record's bytes (bounded by the bundle's MaxRecordSize). An
// error wrapping a *bundle.FormatError or *bundle.LimitError refuses the
// whole bundle; any other error aborts the ingest as a store failure.
// Either way the transaction is rolled back.
type RecordHandler func(ctx context.Context, n *Node, tx *sql.Tx, h *bundle.Header, body io.Reader) error

var recordHandlers sync.Map // bundle.RecordType → RecordHandler

// RegisterRecordHandler makes Ingest apply records of type t with fn.
// Packages that define record types (archive) register in their init; the
// types node handles itself (messages, receipts) cannot be taken over.
func RegisterRecordHandler(t bundle.RecordType, fn RecordHandler) {
	if t == bundle.RecordMessage || t == bundle.RecordReceipt {
		panic(fmt.Sprintf("node: record type %v is node's own", t))
	}
	recordHandlers.Store(t, fn)
}

// CommitHook runs in Ingest after every record of a bundle for this node
// was applied and before the transaction commits; an error wrapping a
// *bundle.FormatError or *bundle.LimitError refuses the bundle, any other
// aborts the ingest as a store failure (rolled back). The archive makes the chunks
// it buffered durable here, so that no bundle counts as applied before
// its chunks are on disk.
type CommitHook func(ctx context.Context, n *Node, tx *sql.Tx) error

var (
	commitHooks   hookList[CommitHook]
	rollbackHooks hookList[RollbackHook]
)

// RegisterCommitHook adds fn to the hooks Ingest runs before committing
// an applied bundle.
func RegisterCommitHook(fn CommitHook) { commitHooks.add(fn) }

func runCommitHooks(ctx context.Context, n *Node, tx *sql.Tx) error {
	for _, fn := range commitHooks.all() {
		if err := fn(ctx, n, tx); err != nil {
			return err
		}
	}
	return nil
}

// RollbackHook runs in Ingest when a bundle for this node is not
// committed after all (refused, or the store failed): it undoes what the
// record handlers of transaction tx left outside the database, such as
// files staged for a transfer.
type RollbackHook func(n *Node, tx *sql.Tx)

// RegisterRollbackHook adds fn to the hooks Ingest runs when an applied
// bundle does not commit.
func RegisterRollbackHook(fn RollbackHook) { rollbackHooks.add(fn) }

func runRollbackHooks(n *Node, tx *sql.Tx) {
	for _, fn := range rollbackHooks.all() {
		fn(n, tx)
	}
}

// hookList is a list of hooks that packages register in their init.
type hookList[F any] struct {
	mu  sync.Mutex
	fns []F
}

func (h *hookList[F]) add(fn F) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fns = append(h.fns, fn)
}

func (h *hookList[F]) all() []F {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fns
}

func recordHandler(t bundle.RecordType) RecordHandler {
	fn, _ := recordHandlers.Load(t)
	h, _ := fn.(RecordHandler)
	return h
}

// SealRecords writes one bundle of kind and priority for the peer dest,
// expiring after ttl (zero means DefaultMessageTTL), with the records
// write adds, and queues it for carrying like the bundles Seal makes. It
// returns the bundle's ID and size.
func (n *Node) SealRecords(ctx context.Context, dest bundle.NodeID, kind bundle.Kind, priority uint8, ttl time.Duration,
	write func(w *bundle.Writer) error) (bundle.ID, int64, error) {
	if ttl == 0 {
		ttl = n.ttl
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	p, err := n.Peer(ctx, dest.String())
	if err != nil {
		return bundle.ID{}, 0, err
	}
	rcpt, err := (&Card{Recipient: p.Recipient}).recipient()
	if err != nil {
		return bundle.ID{}, 0, fmt.Errorf("node: peer %s: %w", p.Name, err)
	}
	return n.sealLocked(ctx, bundle.ToNode(dest), kind, priority, ttl, rcpt, write)
}

// sealLocked writes one bundle for dest, encrypted to rcpt, and queues it
// for carrying. The caller holds writeMu.
func (n *Node) sealLocked(ctx context.Context, dest bundle.Destination, kind bundle.Kind, priority uint8, ttl time.Duration,
	rcpt age.Recipient, write func(w *bundle.Writer) error) (bundle.ID, int64, error) {
	self := n.ID()
	seq, err := nextBundleSeq(ctx, n.db, self)
	if err != nil {
		return bundle.ID{}, 0, err
	}
	now := n.now()
	h := bundle.Header{Kind: kind, Priority: priority, Source: self, Dest: dest,
		Seq: seq, Created: now, Expires: now.Add(ttl)}
	f, err := n.spool.create()
	if err != nil {
		return bundle.ID{}, 0, err
	}
	w, err := bundle.NewWriter(f, h, n.id.Sign, rcpt)
	if err == nil {
		err = write(w)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		n.spool.discard(f)
		return bundle.ID{}, 0, err
	}
	id, final := w.ID(), w.Header()
	if err := n.spool.commit(f, id); err != nil {
		return bundle.ID{}, 0, err
	}
	err = n.withTxLocked(ctx, func(tx *sql.Tx) error {
		return insertBundle(ctx, tx, id, &final, w.Size(), now.UnixMilli(), "outbound")
	})
	if err != nil {
		n.spool.remove(id)
		return bundle.ID{}, 0, err
	}
	return id, w.Size(), nil
}
