package node

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// readFlushDelay is how long a read mark may wait in memory.
const readFlushDelay = time.Second

// readMarks holds read marks not yet written. A page view that marks a
// conversation read does not commit: every commit makes each other
// database connection drop its page cache, and a busy inbox would commit
// at every page. Marks are written together a moment later (and at
// Close), and the queries that count unread messages add them meanwhile.
// A power cut may forget the last second of marks, nothing else.
type readMarks struct {
	mu      sync.Mutex
	pending map[string]map[string]int64 // user → conversation → last read
	// known holds every mark of the users asked about, stored or pending
	// (see marksOf).
	known  map[string]*knownMarks
	timer  *time.Timer
	closed bool
	// flushMu is held while marks are written, so that Close waits for a
	// flush in progress.
	flushMu sync.Mutex
}

// MarkRead records that user has read a conversation up to the message
// with local number upto. Marks only move forward.
func (n *Node) MarkRead(ctx context.Context, user, conv string, upto int64) error {
	marks, err := n.marksOf(ctx, user)
	if err != nil {
		return err
	}
	if upto <= marks[conv] {
		return nil
	}
	r := &n.reads
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("node: closed")
	}
	if k := r.known[user]; k != nil {
		k.marks[conv] = max(k.marks[conv], upto)
	}
	if r.pending == nil {
		r.pending = map[string]map[string]int64{}
	}
	if r.pending[user] == nil {
		r.pending[user] = map[string]int64{}
	}
	r.pending[user][conv] = max(r.pending[user][conv], upto)
	if r.timer == nil {
		r.timer = time.AfterFunc(readFlushDelay, func() {
			if err := n.flushReads(); err != nil {
				n.log.Warn("writing read marks", "err", err)
			}
		})
	}
	return nil
}

// flushReads writes the pending read marks in one transaction. Marks that
// could not be written stay pending.
func (n *Node) flushReads() error {
	r := &n.reads
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	p := r.pending
	r.pending, r.timer = nil, nil
	r.mu.Unlock()
	if len(p) == 0 {
		return nil
	}
	err := n.withLightTx(context.Background(), func(tx *sql.Tx) error {
		for user, convs := range p {
			for conv, id := range convs {
				if err := markRead(context.Background(), tx, user, conv, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		r.mu.Lock()
		for user, convs := range p {
			for conv, id := range convs {
				if r.pending == nil {
					r.pending = map[string]map[string]int64{}
				}
				if r.pending[user] == nil {
					r.pending[user] = map[string]int64{}
				}
				r.pending[user][conv] = max(r.pending[user][conv], id)
			}
		}
		r.mu.Unlock()
	}
	return err
}

// knownMarks are a user's read marks as of a data version.
type knownMarks struct {
	version int64
	loaded  time.Time        // when the stored marks were last read
	marks   map[string]int64 // conversation → last read
}

// closeReads writes the pending marks and takes no more.
func (n *Node) closeReads() error {
	n.reads.mu.Lock()
	n.reads.closed = true
	if n.reads.timer != nil {
		n.reads.timer.Stop()
	}
	n.reads.mu.Unlock()
	return n.flushReads()
}

// pendingReads returns user's unwritten marks as a JSON object, conversation
// to message number, for the queries that count unread messages
// (json_extract(?, '$."room:garden"')).
func (n *Node) pendingReads(user string) string {
	n.reads.mu.Lock()
	defer n.reads.mu.Unlock()
	m := n.reads.pending[user]
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func markRead(ctx context.Context, tx *sql.Tx, user, conv string, upto int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO reads (user, conv, last_id) VALUES (?, ?, ?)
		ON CONFLICT DO UPDATE SET last_id = excluded.last_id WHERE excluded.last_id > reads.last_id`, user, conv, upto)
	return err
}
