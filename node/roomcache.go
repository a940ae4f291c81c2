package node

import (
	"context"
	"database/sql"
	"encoding/json"
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

// versionMemo remembers the data version for the rest of one request.
type versionMemo struct {
	mu sync.Mutex
	v  int64
	ok bool
}

type versionMemoKey struct{}

// Request returns a context for one short request (a web page), under
// which the node asks SQLite whether the database changed only once, not
// at each of the page's queries: the page sees the database as it was
// when it started, plus its own writes (a write through the context
// forgets the answer).
func (n *Node) Request(ctx context.Context) context.Context {
	return context.WithValue(ctx, versionMemoKey{}, &versionMemo{})
}

// forgetVersion drops the remembered data version of ctx after a write.
func forgetVersion(ctx context.Context) {
	if m, _ := ctx.Value(versionMemoKey{}).(*versionMemo); m != nil {
		m.mu.Lock()
		m.ok = false
		m.mu.Unlock()
	}
}

// dataVersion returns a number that changes whenever the database changed.
func (n *Node) dataVersion(ctx context.Context) (int64, error) {
	m, _ := ctx.Value(versionMemoKey{}).(*versionMemo)
	if m == nil {
		return n.askVersion(ctx)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ok {
		return m.v, nil
	}
	v, err := n.askVersion(ctx)
	if err == nil {
		m.v, m.ok = v, true
	}
	return v, err
}

func (n *Node) askVersion(ctx context.Context) (int64, error) {
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

// roomState is a room with its newest visible posts.
type roomState struct {
	Room
	last     int64 // the newest post's local number, 0 if none
	lastTime time.Time
	// recent holds the local numbers of the newest MaxUnread+1 posts,
	// newest first: enough to count what a user has not read.
	recent []int64
}

// unread counts the posts newer than mark, up to MaxUnread+1.
func (r *roomState) unread(mark int64) int {
	k := 0
	for k < len(r.recent) && r.recent[k] > mark {
		k++
	}
	return k
}

// roomsSnapshot holds every room as of one data version.
type roomsSnapshot struct {
	version int64
	rooms   []roomState    // by title, as the room list shows them
	byName  map[string]int // index into rooms
	// peerNames lists every peer's ID and name: a page that shows names
	// is stale when it changes.
	peerNames string
	// meta sums up the rooms, their peers and the peers' names: when it
	// changes, the snapshot is made afresh.
	meta string
	// seen is the largest message number accounted for: messages are
	// never removed, and a new one always takes a larger number, so the
	// next snapshot only reads the messages after it.
	seen int64
}

// metaQuery sums up what a snapshot holds besides messages.
const metaQuery = `SELECT
	(SELECT COALESCE(group_concat(id || ':' || name || ':' || title || ':' || topic || ':' || created_by, '|'), '') FROM rooms) || '#' ||
	(SELECT COALESCE(group_concat(room || ':' || hex(peer), '|'), '') FROM room_peers) || '#' ||
	(SELECT COALESCE(group_concat(hex(id) || '=' || name, '|'), '') FROM peers),
	(SELECT COALESCE(MAX(id), 0) FROM messages)`

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
	var meta string
	var seen int64
	row, err := n.queryRow(ctx, metaQuery)
	if err == nil {
		err = row.Scan(&meta, &seen)
	}
	if err != nil {
		return nil, err
	}
	var s *roomsSnapshot
	if c.snap != nil && c.snap.meta == meta {
		s, err = n.newPosts(ctx, c.snap, v)
	} else {
		s, err = n.loadRooms(ctx, v)
		if s != nil {
			// Posts after seen are read again next time: adding a post
			// twice is harmless (newPosts skips what it knows).
			s.meta, s.seen = meta, seen
		}
	}
	if err != nil {
		return nil, err
	}
	c.snap = s
	return s, nil
}

// newPosts makes the next snapshot from old, whose rooms, peers and names
// are unchanged, with the messages stored since.
func (n *Node) newPosts(ctx context.Context, old *roomsSnapshot, version int64) (*roomsSnapshot, error) {
	s := *old
	s.version = version
	s.rooms = slices.Clone(old.rooms)
	rows, err := n.query(ctx, `SELECT id, room = 1 AND copy_of IS NULL, to_user, origin, created FROM messages WHERE id > ? ORDER BY id`, old.seen)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	self := n.ID()
	for rows.Next() {
		var id, created int64
		var visible bool
		var room string
		var origin []byte
		if err := rows.Scan(&id, &visible, &room, &origin, &created); err != nil {
			return nil, err
		}
		s.seen = max(s.seen, id)
		i, ok := s.byName[room]
		if !visible || !ok {
			continue
		}
		r := &s.rooms[i]
		if o := bundle.NodeID(origin); o != self && !slices.Contains(r.peerIDs, o) {
			continue
		}
		if id <= r.last {
			continue // counted already
		}
		recent := make([]int64, 0, MaxUnread+1)
		recent = append(recent, id)
		r.recent = append(recent, r.recent[:min(len(r.recent), MaxUnread)]...)
		r.last, r.lastTime = id, timeMilli(created)
	}
	return &s, rows.Err()
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
	rows, err := n.query(ctx, `SELECT r.id, r.name, r.title, r.topic, r.created_by, r.created_at, `+newest("created")+`,
		(SELECT COALESCE(json_group_array(id), '[]') FROM (SELECT m.id FROM messages m WHERE `+roomVisible+` ORDER BY m.id DESC LIMIT ?2))
		FROM rooms r ORDER BY r.title COLLATE NOCASE, r.name`, self[:], MaxUnread+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := map[int64]int{}
	for rows.Next() {
		var r roomState
		var created, lastTime int64
		var recent string
		if err := rows.Scan(&r.ID, &r.Name, &r.Title, &r.Topic, &r.CreatedBy, &created, &lastTime, &recent); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(recent), &r.recent); err != nil {
			return nil, fmt.Errorf("node: newest posts of room %s: %w", r.Name, err)
		}
		if len(r.recent) > 0 {
			r.last = r.recent[0]
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
	row, err := n.queryRow(ctx, `SELECT COALESCE(group_concat(hex(id) || '=' || name, ','), '') FROM (SELECT id, name FROM peers ORDER BY id)`)
	if err == nil {
		err = row.Scan(&s.peerNames)
	}
	if err != nil {
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

// marksRefresh is how often a user's stored read marks are read again
// while the database changes. This process knows the marks it writes
// (MarkRead, Post); only a post made by another process (`ferry msg`)
// marks a conversation read unseen, for at most this long.
const marksRefresh = 2 * time.Second

// marksOf returns every read mark of user, stored or pending. The stored
// ones are read again when the database changed (see marksRefresh); marks
// only move forward, so what is read is merged by taking the larger.
func (n *Node) marksOf(ctx context.Context, user string) (map[string]int64, error) {
	v, err := n.dataVersion(ctx)
	if err != nil {
		return nil, err
	}
	r := &n.reads
	r.mu.Lock()
	k := r.known[user]
	if k != nil && (k.version == v || time.Since(k.loaded) < marksRefresh) {
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
	k.version, k.loaded = v, time.Now()
	return maps.Clone(k.marks), nil
}

// noteRead records a mark this process wrote (Post) among the known ones.
func (n *Node) noteRead(user, conv string, upto int64) {
	r := &n.reads
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.known[user]; k != nil {
		k.marks[conv] = max(k.marks[conv], upto)
	}
}

// roomPages keeps the newest page of each room as loadEntries made it,
// for as long as its key holds: no post is ever changed or removed, so a
// room whose newest post, peers and peer names are the same shows the
// same messages. What can change (delivery states, quotes) is filled in
// at each view.
type roomPages struct {
	mu sync.Mutex
	m  map[string]*roomPage
}

type roomPageKey struct {
	newest int64
	limit  int
	peers  string
	names  string
}

type roomPage struct {
	key  roomPageKey
	msgs []ChatMessage
	refs []*bundle.MessageRef
}

// get returns a copy of the cached page, whose Files the caller must not
// change.
func (c *roomPages) get(room string, key roomPageKey) ([]ChatMessage, []*bundle.MessageRef, bool) {
	c.mu.Lock()
	p := c.m[room]
	c.mu.Unlock()
	if p == nil || p.key != key {
		return nil, nil, false
	}
	return slices.Clone(p.msgs), p.refs, true
}

func (c *roomPages) put(room string, key roomPageKey, msgs []ChatMessage, refs []*bundle.MessageRef) {
	p := &roomPage{key: key, msgs: slices.Clone(msgs), refs: refs}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*roomPage{}
	}
	c.m[room] = p
}
