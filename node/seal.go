package node

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"ferry/bundle"
)

// Bundle priorities: lower goes first.
const (
	PriorityReceipts = 0 // only receipts: tiny, and they free space everywhere
	PriorityMessages = 1
	PriorityArchive  = 4
)

// maxSealRecords bounds the records sealed into one bundle, so that one
// bundle stays small enough to move over a slow link in one contact.
const maxSealRecords = 10000

// Seal packs every message and receipt waiting for a destination into
// bundles, one per destination (more if many are waiting), ready to be
// carried. An age header costs about 200 bytes, as much as a short
// message, so messages wait here until a contact and then travel together.
// It returns the IDs of the new bundles.
func (n *Node) Seal(ctx context.Context) ([]bundle.ID, error) {
	self := n.ID()
	rows, err := n.db.QueryContext(ctx, `
		SELECT to_node FROM messages WHERE bundle IS NULL AND state = 'queued' AND origin = ? AND to_node != ?
		UNION SELECT dest FROM pending_receipts`, self[:], self[:])
	if err != nil {
		return nil, err
	}
	var dests []bundle.NodeID
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return nil, err
		}
		dests = append(dests, bundle.NodeID(d))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var ids []bundle.ID
	for _, d := range dests {
		for {
			id, ok, err := n.sealOne(ctx, d)
			if err != nil {
				return ids, err
			}
			if !ok {
				break
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// sealFileBudget bounds the attached files sealed into one bundle, in
// bytes: more wait for the next bundle (a message with files larger than
// that travels alone).
const sealFileBudget = 64 << 20

type pendingMessage struct {
	rowid int64
	msg   bundle.Message
	// files holds the files attached to it, or to the room post it is the
	// copy of.
	files []Attachment
	owner int64 // the row the files belong to: rowid, or the room post copied
}

// sealOne seals up to maxSealRecords records for dest into one bundle. It
// reports false when nothing was waiting.
func (n *Node) sealOne(ctx context.Context, dest bundle.NodeID) (bundle.ID, bool, error) {
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	p, err := n.Peer(ctx, dest.String())
	if err != nil {
		return bundle.ID{}, false, err
	}
	rcpt, err := (&Card{Recipient: p.Recipient}).recipient()
	if err != nil {
		return bundle.ID{}, false, fmt.Errorf("node: peer %s: %w", p.Name, err)
	}

	var receiptIDs []int64
	var receipts [][]byte
	rows, err := n.db.QueryContext(ctx, `SELECT id, body FROM pending_receipts WHERE dest = ? ORDER BY id LIMIT ?`, dest[:], maxSealRecords)
	if err != nil {
		return bundle.ID{}, false, err
	}
	for rows.Next() {
		var id int64
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return bundle.ID{}, false, err
		}
		receiptIDs, receipts = append(receiptIDs, id), append(receipts, body)
	}
	rows.Close()

	self := n.ID()
	var msgs []pendingMessage
	rows, err = n.db.QueryContext(ctx, `SELECT id, seq, created, from_user, to_user, room, body, reply_origin, reply_seq,
		COALESCE(copy_of, id) FROM messages
		WHERE bundle IS NULL AND state = 'queued' AND origin = ? AND to_node = ? ORDER BY seq LIMIT ?`,
		self[:], dest[:], maxSealRecords-len(receipts))
	if err != nil {
		return bundle.ID{}, false, err
	}
	for rows.Next() {
		var m pendingMessage
		var created int64
		var replyOrigin []byte
		var replySeq sql.NullInt64
		if err := rows.Scan(&m.rowid, &m.msg.Seq, &created, &m.msg.From, &m.msg.To, &m.msg.Room, &m.msg.Body, &replyOrigin, &replySeq, &m.owner); err != nil {
			rows.Close()
			return bundle.ID{}, false, err
		}
		m.msg.Created = timeMilli(created)
		if len(replyOrigin) == len(bundle.NodeID{}) && replySeq.Valid {
			m.msg.ReplyTo = &bundle.MessageRef{Node: bundle.NodeID(replyOrigin), Seq: uint64(replySeq.Int64)}
		}
		msgs = append(msgs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return bundle.ID{}, false, err
	}
	if len(receipts) == 0 && len(msgs) == 0 {
		return bundle.ID{}, false, nil
	}
	if msgs, err = n.withFiles(ctx, msgs); err != nil {
		return bundle.ID{}, false, err
	}

	seq, err := nextBundleSeq(ctx, n.db, self)
	if err != nil {
		return bundle.ID{}, false, err
	}
	now := n.now()
	h := bundle.Header{
		Kind:     bundle.KindMessages,
		Priority: PriorityMessages,
		Source:   self,
		Dest:     bundle.ToNode(dest),
		Seq:      seq,
		Created:  now,
		Expires:  now.Add(n.ttl),
	}
	if len(msgs) == 0 {
		h.Priority = PriorityReceipts
	}
	f, err := n.spool.create()
	if err != nil {
		return bundle.ID{}, false, err
	}
	w, err := bundle.NewWriter(f, h, n.id.Sign, rcpt)
	if err != nil {
		n.spool.discard(f)
		return bundle.ID{}, false, err
	}
	for _, r := range receipts {
		if err := w.WriteRecord(bundle.RecordReceipt, r); err != nil {
			n.spool.discard(f)
			return bundle.ID{}, false, err
		}
	}
	var buf []byte
	for _, m := range msgs {
		if buf, err = m.msg.AppendBinary(buf[:0]); err != nil {
			n.spool.discard(f)
			return bundle.ID{}, false, err
		}
		if err := w.WriteRecord(bundle.RecordMessage, buf); err != nil {
			n.spool.discard(f)
			return bundle.ID{}, false, err
		}
		for _, a := range m.files {
			if err := n.writeAttachment(w, m.msg.Seq, a); err != nil {
				n.spool.discard(f)
				return bundle.ID{}, false, err
			}
		}
	}
	if err := w.Close(); err != nil {
		n.spool.discard(f)
		return bundle.ID{}, false, err
	}
	id, final := w.ID(), w.Header()
	if err := n.spool.commit(f, id); err != nil {
		return bundle.ID{}, false, err
	}
	err = n.withTxLocked(ctx, func(tx *sql.Tx) error {
		if err := insertBundle(ctx, tx, id, &final, w.Size(), now.UnixMilli(), "outbound"); err != nil {
			return err
		}
		for _, m := range msgs {
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET bundle = ? WHERE id = ?`, id[:], m.rowid); err != nil {
				return err
			}
		}
		for _, r := range receiptIDs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM pending_receipts WHERE id = ?`, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.spool.remove(id)
		return bundle.ID{}, false, err
	}
	n.log.Info("sealed bundle", "bundle", id, "dest", p.Name, "messages", len(msgs), "receipts", len(receipts), "bytes", w.Size())
	return id, true, nil
}

// Sequence numbers. A node numbers its bundles (bundles.seq) and its
// messages (messages.seq) from 1, each the largest so far plus one, and
// peers remember the numbers they have seen: their vectors skip a bundle
// whose (source, seq) they hold, and a message whose (origin, seq) they
// hold is dropped as a duplicate. A node restored from an old backup has
// lost the numbers it issued after the backup, and would issue them
// again. So Restore sets a floor (meta seq_floor) above any number the
// node can have issued since: the largest in the backup plus
// restoreSeqMargin, or the time of the restore in Unix milliseconds,
// whichever is larger (a node issues far fewer than one number per
// millisecond over its life, and the margin covers a clock that a Pi
// without a real-time clock set back). The next numbers start at the
// floor; peers see a gap in the node's numbers, which their vectors hold
// as one range.

// seqFloorKey is the meta key of the sequence floor.
const seqFloorKey = "seq_floor"

// restoreSeqMargin is the least a restore moves the numbers on.
const restoreSeqMargin = 1 << 24

// nextBundleSeq takes the number of this node's next bundle, in a write
// transaction of its own, so that two processes sealing at once (serve,
// and a command writing a transfer for minutes) never take the same one:
// a second bundle under a number a peer already holds would never be
// offered to it. A number taken by a seal that then fails is skipped.
func nextBundleSeq(ctx context.Context, db *sql.DB, self bundle.NodeID) (uint64, error) {
	var seq uint64
	err := runTx(ctx, db, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT MAX(COALESCE((SELECT MAX(seq) FROM bundles WHERE source = ?), 0) + 1,
			COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '`+seqFloorKey+`'), 0),
			COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '`+seqTakenKey+`'), 0) + 1)`, self[:]).Scan(&seq)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('`+seqTakenKey+`', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, fmt.Sprint(seq))
		return err
	})
	return seq, err
}

// seqTakenKey is the meta key of the last bundle number taken.
const seqTakenKey = "bundle_seq_taken"

// nextMessageSeq returns the number of this node's next message.
func nextMessageSeq(ctx context.Context, q querier, self bundle.NodeID) (uint64, error) {
	var seq uint64
	err := q.QueryRowContext(ctx, `SELECT MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE origin = ?), 0) + 1,
		COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '`+seqFloorKey+`'), 0))`, self[:]).Scan(&seq)
	return seq, err
}

// raiseSeqFloor sets the sequence floor after a restore (see above) and
// returns it.
func (n *Node) raiseSeqFloor(ctx context.Context, now time.Time) (uint64, error) {
	self := n.ID()
	var top, floor uint64
	err := n.db.QueryRowContext(ctx, `SELECT MAX(
		COALESCE((SELECT MAX(seq) FROM bundles WHERE source = ?1), 0),
		COALESCE((SELECT MAX(seq) FROM messages WHERE origin = ?1), 0)),
		COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '`+seqFloorKey+`'), 0)`, self[:]).Scan(&top, &floor)
	if err != nil {
		return 0, err
	}
	floor = max(floor, top+restoreSeqMargin, uint64(now.UnixMilli()))
	_, err = n.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('`+seqFloorKey+`', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, fmt.Sprint(floor))
	return floor, err
}

// withFiles loads the files attached to the messages, and keeps only as
// many messages as sealFileBudget allows (at least one).
func (n *Node) withFiles(ctx context.Context, msgs []pendingMessage) ([]pendingMessage, error) {
	var total int64
	for i := range msgs {
		m := &msgs[i]
		rows, err := n.db.QueryContext(ctx, `SELECT id, message, name, hash, size, type FROM attachments WHERE message = ? ORDER BY id`, m.owner)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var a Attachment
			if err := rows.Scan(&a.ID, &a.Message, &a.Name, &a.Hash, &a.Size, &a.Type); err != nil {
				rows.Close()
				return nil, err
			}
			m.files = append(m.files, a)
			total += a.Size
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if total > sealFileBudget && i > 0 {
			return msgs[:i], nil
		}
	}
	return msgs, nil
}

// writeAttachment writes the record of a file attached to message seq,
// streaming its body from the files folder. A file too large to travel,
// or whose body is missing, is left out (and logged): the message goes
// without it.
func (n *Node) writeAttachment(w *bundle.Writer, seq uint64, a Attachment) error {
	h := bundle.AttachmentHeader{Seq: seq, Size: uint64(a.Size), Name: a.Name, Type: a.Type}
	if len(h.Type) > bundle.MaxAttachmentType {
		h.Type = ""
	}
	if h.Name == "" {
		h.Name = "file"
	}
	hash, err := hex.DecodeString(a.Hash)
	if err != nil || len(hash) != len(h.Hash) {
		n.log.Warn("attachment left out: bad hash", "attachment", a.ID, "hash", a.Hash)
		return nil
	}
	copy(h.Hash[:], hash)
	hb, err := h.AppendBinary(nil)
	if err != nil {
		n.log.Warn("attachment left out", "attachment", a.ID, "err", err)
		return nil
	}
	f, err := n.OpenBlob(a.Hash)
	if err != nil {
		n.log.Warn("attachment left out: body missing", "attachment", a.ID, "err", err)
		return nil
	}
	defer f.Close()
	if err := w.BeginRecord(bundle.RecordAttachment, uint64(len(hb))+h.Size); err != nil {
		return err
	}
	if _, err := w.Write(hb); err != nil {
		return err
	}
	if _, err := io.CopyN(w, f, a.Size); err != nil {
		return fmt.Errorf("node: attachment %d: %w", a.ID, err)
	}
	return nil
}
