package node

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"ferry/bundle"
)

// Every page of the inbox shows which rooms have unread posts, and most
// show a room. Asking SQLite each time (one probe per room) was a fifth of
// the server's work under load, so the rooms, with the newest post of
// each, are kept in memory and read again only when the database changed.
// "Changed" is PRAGMA data_version on a connection kept for that purpose:
// it moves whenever any other connection commits, in this process or in
// another (`ferry import` while `ferry serve` runs).

// watch is the connection that tells whether the database changed.
type watch struct {
	mu   sync.Mutex
	conn *sql.Conn
	stmt *sql.Stmt
}

// dataVersion returns a number that changes whenever the database changed.
func (n *Node) dataVersion(ctx context.Context) (int64, error) {
	w := &n.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		c, err := n.db.Conn(context.Background())
		if err != nil {
			return 0, fmt.Errorf("node: %w", err)
		}
		st, err := c.PrepareContext(context.Background(), `PRAGMA data_version`)
		if err != nil {
			c.Close()
			return 0, fmt.Errorf("node: %w", err)
		}
		w.conn, w.stmt = c, st
	}
	var v int64
	if err := w.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		return 0, fmt.Errorf("node: data version: %w", err)
	}
	return v, nil
}

func (n *Node) closeWatch() error {
	w := &n.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	w.stmt.Close()
	err := w.conn.Close()
	w.conn, w.stmt = nil, nil
	return err
}

// roomState is a room with its newest visible post.
type roomState struct {
	Room
	last     int64 // the newest post's local number, 0 if none
	lastTime time.Time
}

// roomsSnapshot holds every room as of one data version.
type roomsSnapshot struct {
	version int64
	rooms   []roomState    // by title, as the room list shows them
	byName  map[string]int // index into rooms
}

type roomCache struct {
	mu   sync.Mutex
	snap *roomsSnapshot
}

// roomsNow returns the rooms as the database holds them now. The snapshot
// is shared: callers copy what they hand out.
func (n *Node) roomsNow(ctx context.Context) (*roomsSnapshot, error) {
	v, err := n.dataVersion(ctx)
	if err != nil {
		return nil, err
	}
	c := &n.roomCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil && c.snap.version == v {
		return c.snap, nil
	}
	s, err := n.loadRooms(ctx, v)
	if err != nil {
		return nil, err
	}
	c.snap = s
	return s, nil
}

// loadRooms reads every room, its peers and its newest visible post.
func (n *Node) loadRooms(ctx context.Context, version int64) (*roomsSnapshot, error) {
	self := n.ID()
	s := &roomsSnapshot{version: version, byName: map[string]int{}}
	// ORDER BY ... LIMIT 1 rather than MAX: it stops at the newest row
	// of the index messages_to that is visible, where MAX reads them all.
	newest := func(col string) string {
		return `COALESCE((SELECT m.` + col + ` FROM messages m WHERE ` + roomVisible + ` ORDER BY m.id DESC LIMIT 1), 0)`
	}
	rows, err := n.query(ctx, `SELECT r.id, r.name, r.title, r.topic, r.created_by, r.created_at, `+newest("id")+`, `+newest("created")+`
		FROM rooms r ORDER BY r.title COLLATE NOCASE, r.name`, self[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := map[int64]int{}
	for rows.Next() {
		var r roomState
		var created, lastTime int64
		if err := rows.Scan(&r.ID, &r.Name, &r.Title, &r.Topic, &r.CreatedBy, &created, &r.last, &lastTime); err != nil {
			return nil, err
		}
		r.CreatedAt = timeMilli(created)
		if r.last != 0 {
			r.lastTime = timeMilli(lastTime)
		}
		s.byName[r.Name], byID[r.ID] = len(s.rooms), len(s.rooms)
		s.rooms = append(s.rooms, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	prows, err := n.query(ctx, `SELECT rp.room, rp.peer, COALESCE(p.name, '') FROM room_peers rp
		LEFT JOIN peers p ON p.id = rp.peer ORDER BY rp.room, p.name`)
	if err != nil {
		return nil, err
	}
	defer prows.Close()
	for prows.Next() {
		var room int64
		var id []byte
		var pname string
		if err := prows.Scan(&room, &id, &pname); err != nil {
			return nil, err
		}
		i, ok := byID[room]
		if !ok {
			continue
		}
		if pname == "" {
			pname = bundle.NodeID(id).Short()
		}
		r := &s.rooms[i]
		r.peerIDs = append(r.peerIDs, bundle.NodeID(id))
		r.Peers = append(r.Peers, pname)
	}
	return s, prows.Err()
}

// copyRoom returns a copy of a snapshot's room that callers may keep.
func copyRoom(r *Room) *Room {
	c := *r
	c.Peers = slices.Clone(r.Peers)
	c.peerIDs = slices.Clone(r.peerIDs)
	return &c
}

// marksOf returns every read mark of user, stored or pending. The stored
// ones are read again when the database changed (another process may have
// posted for the user); marks only move forward, so what is read is merged
// by taking the larger.
func (n *Node) marksOf(ctx context.Context, user string) (map[string]int64, error) {
	v, err := n.dataVersion(ctx)
	if err != nil {
		return nil, err
	}
	r := &n.reads
	r.mu.Lock()
	k := r.known[user]
	if k != nil && k.version == v {
		m := maps.Clone(k.marks)
		r.mu.Unlock()
		return m, nil
	}
	r.mu.Unlock()
	rows, err := n.query(ctx, `SELECT conv, last_id FROM reads WHERE user = ?`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := map[string]int64{}
	for rows.Next() {
		var conv string
		var id int64
		if err := rows.Scan(&conv, &id); err != nil {
			return nil, err
		}
		stored[conv] = id
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[string]*knownMarks{}
	}
	k = r.known[user]
	if k == nil {
		k = &knownMarks{marks: map[string]int64{}}
		r.known[user] = k
	}
	for conv, id := range stored {
		k.marks[conv] = max(k.marks[conv], id)
	}
	for conv, id := range r.pending[user] {
		k.marks[conv] = max(k.marks[conv], id)
	}
	k.version = v
	return maps.Clone(k.marks), nil
}
