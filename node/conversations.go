package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"ferry/bundle"
)

// ErrNoMessage means no message has that local number, or the user may
// not see it.
var ErrNoMessage = errors.New("node: no such message")

// ChatMessage is a message as a conversation shows it.
type ChatMessage struct {
	ID       int64 // the local number: stable on this node, for links and read marks
	Msg      MessageID
	From     Address
	To       Address // a direct message's recipient; zero for a room post
	Room     string  // a room post's room
	Body     string
	Sent     time.Time // by the sender's clock
	Received time.Time // here; zero for what was written here
	ReplyTo  *Quote
	Files    []Attachment
	// Deliveries follow a message sent from this node to other
	// communities: one per destination. Empty for messages that did not
	// leave this node.
	Deliveries []Delivery

	copies bool // a room post with copies for peers (made with the post)
}

// Quote is the message a reply answers, in brief.
type Quote struct {
	ID   int64 // its local number
	From Address
	Body string // its first 200 bytes
}

// Delivery is how far a message has gone towards one community: queued
// here, carried (by which carrier, when), delivered there, or failed or
// expired on the way.
type Delivery struct {
	Node      string
	State     string
	At        time.Time // when it reached the state
	Carrier   string    // the first carrier that took it: file, usb, tcp...
	CarriedAt time.Time // when that carrier took it; zero while queued
	Reason    string    // why it failed
}

// Attachment is a file that came with a message.
type Attachment struct {
	ID      int64
	Message int64
	Name    string
	Hash    string
	Size    int64
	Type    string
}

// Page selects a window of a conversation: the Limit newest messages
// older than Before (0: the newest).
type Page struct {
	Before int64
	Limit  int
}

func (p Page) limit() int {
	if p.Limit <= 0 || p.Limit > 500 {
		return 50
	}
	return p.Limit
}

// RoomMessages returns a page of a room's messages, oldest first.
func (n *Node) RoomMessages(ctx context.Context, room string, p Page) ([]ChatMessage, error) {
	snap, err := n.roomsNow(ctx)
	if err != nil {
		return nil, err
	}
	i, ok := snap.byName[room]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRoom, room)
	}
	r := &snap.rooms[i]
	self := n.ID()
	load := func() ([]ChatMessage, []*bundle.MessageRef, error) {
		return n.loadEntries(ctx, `m.to_user = ? AND m.room = 1 AND m.copy_of IS NULL
		AND (m.origin = ? OR m.origin IN (SELECT peer FROM room_peers WHERE room = ?))`,
			[]any{r.Name, self[:], r.ID}, p)
	}
	if p.Before > 0 {
		out, refs, err := load()
		if err != nil {
			return nil, err
		}
		return out, n.fillEntries(ctx, out, refs)
	}
	// The newest page: from the cache while the room's newest post, its
	// peers and the peers' names are the same (node/roomcache.go).
	key := roomPageKey{newest: r.last, limit: p.limit(), peers: fmt.Sprint(r.peerIDs), names: snap.peerNames}
	out, refs, ok := n.roomPages.get(room, key)
	if !ok {
		if out, refs, err = load(); err != nil {
			return nil, err
		}
		n.roomPages.put(room, key, out, refs)
	}
	return out, n.fillEntries(ctx, out, refs)
}

// DirectMessages returns a page of the direct messages between a local
// user and another user, here or at a peer, oldest first.
func (n *Node) DirectMessages(ctx context.Context, user string, with Address, p Page) ([]ChatMessage, error) {
	other, err := n.nodeID(ctx, with.Node)
	if err != nil {
		return nil, err
	}
	self := n.ID()
	return n.entries(ctx, `m.room = 0 AND (
		(m.to_user = ? AND m.to_node = ? AND m.origin = ? AND m.from_user = ?) OR
		(m.to_user = ? AND m.to_node = ? AND m.origin = ? AND m.from_user = ?))`,
		[]any{with.User, other[:], self[:], user, user, self[:], other[:], with.User}, p)
}

// Message returns one message, if user may see it: a post in a room, or
// a direct message user sent or received.
func (n *Node) Message(ctx context.Context, user string, id int64) (*ChatMessage, string, error) {
	r, err := n.loadRow(ctx, n.db, id)
	if err != nil {
		return nil, "", err
	}
	conv, err := n.visibleConv(ctx, n.db, r, user)
	if err != nil {
		return nil, "", err
	}
	if conv == "" {
		return nil, "", fmt.Errorf("%w %d", ErrNoMessage, id)
	}
	es, err := n.entries(ctx, `m.id = ?`, []any{id}, Page{Before: id + 1, Limit: 1})
	if err != nil || len(es) != 1 {
		return nil, "", errors.Join(err, fmt.Errorf("%w %d", ErrNoMessage, id))
	}
	return &es[0], conv, nil
}

// Conversation sums up the direct messages between a local user and one
// other user.
type Conversation struct {
	With   Address
	LastID int64
	Last   ChatMessage
	Unread int
}

// Conversations lists a local user's direct conversations, the latest
// first.
func (n *Node) Conversations(ctx context.Context, user string) ([]Conversation, error) {
	self := n.ID()
	rows, err := n.db.QueryContext(ctx, `SELECT c.pn, c.pu, MAX(c.id),
		SUM(c.incoming AND c.id > `+dmReadMark("c.pn", "c.pu", "r", "?3")+`)
		FROM (
			SELECT to_node AS pn, to_user AS pu, id, 0 AS incoming FROM messages
				WHERE room = 0 AND origin = ?1 AND from_user = ?2
			UNION ALL
			SELECT origin, from_user, id, NOT (origin = ?1 AND from_user = ?2) FROM messages
				WHERE room = 0 AND to_node = ?1 AND to_user = ?2
		) c LEFT JOIN reads r ON r.user = ?2 AND r.conv = 'dm:' || lower(hex(c.pn)) || ':' || c.pu
		GROUP BY c.pn, c.pu ORDER BY MAX(c.id) DESC`, self[:], user, n.pendingReads(user))
	if err != nil {
		return nil, err
	}
	var out []Conversation
	names := nodeNames{n: n, ctx: ctx}
	for rows.Next() {
		var c Conversation
		var pn []byte
		if err := rows.Scan(&pn, &c.With.User, &c.LastID, &c.Unread); err != nil {
			rows.Close()
			return nil, err
		}
		c.With.Node = names.name(bundle.NodeID(pn))
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		es, err := n.entries(ctx, `m.id = ?`, []any{out[i].LastID}, Page{Before: out[i].LastID + 1, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(es) == 1 {
			out[i].Last = es[0]
		}
	}
	return out, nil
}

// RoomConv names a room's conversation, for MarkRead.
func RoomConv(room string) string { return roomConv(room) }

// DirectConv names the direct conversation with a user, for MarkRead.
func (n *Node) DirectConv(ctx context.Context, with Address) (string, error) {
	id, err := n.nodeID(ctx, with.Node)
	if err != nil {
		return "", err
	}
	return dmConv(id, with.User), nil
}

func roomConv(room string) string { return "room:" + room }

// dmReadMark is the SQL of how far a user has read the direct conversation
// with user userCol at node nodeCol: the stored mark (a reads row joined
// as alias) or the pending one (a JSON object in parameter param).
func dmReadMark(nodeCol, userCol, alias, param string) string {
	return `MAX(COALESCE(` + alias + `.last_id, 0), COALESCE(json_extract(` + param + `, '$."dm:' || lower(hex(` + nodeCol + `)) || ':' || ` + userCol + ` || '"'), 0))`
}

func dmConv(node bundle.NodeID, user string) string {
	return fmt.Sprintf("dm:%x:%s", node[:], user)
}

// row is the part of a messages row that says where it belongs.
type row struct {
	id       int64
	origin   []byte
	seq      int64
	fromUser string
	toNode   []byte
	toUser   string
	room     bool
	copyOf   sql.NullInt64
}

func (n *Node) loadRow(ctx context.Context, q querier, id int64) (*row, error) {
	r := &row{id: id}
	err := q.QueryRowContext(ctx, `SELECT origin, seq, from_user, to_node, to_user, room, copy_of FROM messages WHERE id = ?`, id).
		Scan(&r.origin, &r.seq, &r.fromUser, &r.toNode, &r.toUser, &r.room, &r.copyOf)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w %d", ErrNoMessage, id)
	}
	return r, err
}

// visibleConv returns the conversation a message belongs to as user sees
// it, or "" when user may not see it: copies of room posts for peers, posts
// in rooms this node does not share with their origin, and other users'
// direct messages.
func (n *Node) visibleConv(ctx context.Context, q querier, r *row, user string) (string, error) {
	self := n.ID()
	origin, toNode := bundle.NodeID(r.origin), bundle.NodeID(r.toNode)
	if r.copyOf.Valid || toNode != self && origin != self {
		return "", nil
	}
	if r.room {
		if toNode != self {
			return "", nil
		}
		if origin != self {
			ok, err := roomAccepts(ctx, q, r.toUser, origin)
			if err != nil || !ok {
				return "", err
			}
		} else if _, err := n.Room(ctx, r.toUser); errors.Is(err, ErrUnknownRoom) {
			return "", nil
		} else if err != nil {
			return "", err
		}
		return roomConv(r.toUser), nil
	}
	switch {
	case origin == self && r.fromUser == user:
		return dmConv(toNode, r.toUser), nil
	case toNode == self && r.toUser == user:
		return dmConv(origin, r.fromUser), nil
	}
	return "", nil
}

// entries loads a page of messages matching cond, oldest first, with their
// quotes, attachments and delivery states.
func (n *Node) entries(ctx context.Context, cond string, args []any, p Page) ([]ChatMessage, error) {
	out, refs, err := n.loadEntries(ctx, cond, args, p)
	if err != nil {
		return nil, err
	}
	return out, n.fillEntries(ctx, out, refs)
}

// loadEntries loads what does not change in a page of messages: the
// messages, oldest first, with their attachments, and the references of
// the replies. Delivery states of room posts and quotes are left to
// fillEntries.
func (n *Node) loadEntries(ctx context.Context, cond string, args []any, p Page) ([]ChatMessage, []*bundle.MessageRef, error) {
	before := p.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := n.query(ctx, `SELECT m.id, m.origin, m.seq, m.from_user, m.to_node, m.to_user, m.room,
		m.body, m.created, COALESCE(m.received_at, 0), m.state, m.state_at, COALESCE(m.carrier, ''), COALESCE(m.reason, ''),
		COALESCE((SELECT MIN(h.at) FROM handoffs h WHERE h.bundle = m.bundle), 0), m.reply_origin, m.reply_seq,
		m.room AND EXISTS (SELECT 1 FROM messages c WHERE c.copy_of = m.id)
		FROM messages m WHERE `+cond+` AND m.id < ? ORDER BY m.id DESC LIMIT ?`, append(args, before, p.limit())...)
	if err != nil {
		return nil, nil, err
	}
	names := nodeNames{n: n, ctx: ctx}
	var out []ChatMessage
	var refs []*bundle.MessageRef
	for rows.Next() {
		e, ref, err := n.scanEntry(rows, &names)
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		out, refs = append(out, e), append(refs, ref)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	// Oldest first.
	slices.Reverse(out)
	slices.Reverse(refs)
	return out, refs, n.loadAttachments(ctx, out)
}

// fillEntries adds to messages from loadEntries what may change: the
// quotes of replies (the message quoted may arrive later) and the
// delivery states of room posts.
func (n *Node) fillEntries(ctx context.Context, es []ChatMessage, refs []*bundle.MessageRef) error {
	names := nodeNames{n: n, ctx: ctx}
	if err := n.loadQuotes(ctx, es, refs, &names); err != nil {
		return err
	}
	return n.loadCopies(ctx, es, &names)
}

// scanEntry reads a row of the entries query, and the message it replies
// to, if any.
func (n *Node) scanEntry(rows *sql.Rows, names *nodeNames) (ChatMessage, *bundle.MessageRef, error) {
	var e ChatMessage
	var origin, toNode, replyOrigin []byte
	var replySeq sql.NullInt64
	var room bool
	var created, received, stateAt, carriedAt int64
	var state string
	var d Delivery
	if err := rows.Scan(&e.ID, &origin, &e.Msg.Seq, &e.From.User, &toNode, &e.To.User, &room,
		&e.Body, &created, &received, &state, &stateAt, &d.Carrier, &d.Reason, &carriedAt, &replyOrigin, &replySeq, &e.copies); err != nil {
		return e, nil, err
	}
	self := n.ID()
	e.Msg.Origin = bundle.NodeID(origin)
	e.From.Node = names.name(e.Msg.Origin)
	e.Sent = timeMilli(created)
	if received != 0 && e.Msg.Origin != self {
		e.Received = timeMilli(received)
	}
	if room {
		e.Room, e.To = e.To.User, Address{}
	} else {
		e.To.Node = names.name(bundle.NodeID(toNode))
		if e.Msg.Origin == self && bundle.NodeID(toNode) != self {
			d.Node, d.State, d.At = e.To.Node, state, timeMilli(stateAt)
			if carriedAt != 0 {
				d.CarriedAt = timeMilli(carriedAt)
			}
			e.Deliveries = []Delivery{d}
		}
	}
	var ref *bundle.MessageRef
	if len(replyOrigin) == len(bundle.NodeID{}) && replySeq.Valid {
		ref = &bundle.MessageRef{Node: bundle.NodeID(replyOrigin), Seq: uint64(replySeq.Int64)}
	}
	return e, ref, nil
}

// loadQuotes fills the quotes of replies. A reply that names a message of
// another conversation shows no quote: a peer could otherwise make a
// reply quote a message its reader may not see.
func (n *Node) loadQuotes(ctx context.Context, es []ChatMessage, refs []*bundle.MessageRef, names *nodeNames) error {
	for i, ref := range refs {
		if ref == nil {
			continue
		}
		// A copy of a post made here names the post.
		var qid int64
		row, err := n.queryRow(ctx, `SELECT COALESCE(copy_of, id) FROM messages WHERE origin = ? AND seq = ?`, ref.Node[:], ref.Seq)
		if err == nil {
			err = row.Scan(&qid)
		}
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return err
		}
		q, err := n.loadRow(ctx, n.db, qid)
		if err != nil {
			return err
		}
		if ok, err := n.sameConversation(ctx, &es[i], q); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		var body string
		if row, err = n.queryRow(ctx, `SELECT substr(body, 1, 200) FROM messages WHERE id = ?`, qid); err == nil {
			err = row.Scan(&body)
		}
		if err != nil {
			return err
		}
		es[i].ReplyTo = &Quote{ID: qid, From: Address{User: q.fromUser, Node: names.name(bundle.NodeID(q.origin))}, Body: body}
	}
	return nil
}

// sameConversation reports whether q belongs to the conversation of e, as
// a party to e sees it.
func (n *Node) sameConversation(ctx context.Context, e *ChatMessage, q *row) (bool, error) {
	m, err := n.loadRow(ctx, n.db, e.ID)
	if err != nil {
		return false, err
	}
	viewer := m.fromUser
	if bundle.NodeID(m.origin) != n.ID() {
		viewer = m.toUser
	}
	mc, err := n.visibleConv(ctx, n.db, m, viewer)
	if err != nil || mc == "" {
		return false, err
	}
	qc, err := n.visibleConv(ctx, n.db, q, viewer)
	return qc == mc, err
}

// loadCopies fills the deliveries of room posts from their copies.
func (n *Node) loadCopies(ctx context.Context, es []ChatMessage, names *nodeNames) error {
	idx := map[int64]int{}
	var ids []int64
	for i, e := range es {
		if e.copies {
			idx[e.ID] = i
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := n.query(ctx, `SELECT c.copy_of, c.to_node, c.state, c.state_at, COALESCE(c.carrier, ''), COALESCE(c.reason, ''),
		COALESCE((SELECT MIN(h.at) FROM handoffs h WHERE h.bundle = c.bundle), 0)
		FROM messages c WHERE c.copy_of IN (SELECT value FROM json_each(?)) ORDER BY c.id`, jsonIDs(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var of, stateAt, carriedAt int64
		var node []byte
		var d Delivery
		if err := rows.Scan(&of, &node, &d.State, &stateAt, &d.Carrier, &d.Reason, &carriedAt); err != nil {
			return err
		}
		d.Node, d.At = names.name(bundle.NodeID(node)), timeMilli(stateAt)
		if carriedAt != 0 {
			d.CarriedAt = timeMilli(carriedAt)
		}
		e := &es[idx[of]]
		e.Deliveries = append(e.Deliveries, d)
	}
	return rows.Err()
}

func (n *Node) loadAttachments(ctx context.Context, es []ChatMessage) error {
	if len(es) == 0 {
		return nil
	}
	idx := map[int64]int{}
	ids := make([]int64, len(es))
	for i, e := range es {
		idx[e.ID] = i
		ids[i] = e.ID
	}
	rows, err := n.query(ctx, `SELECT id, message, name, hash, size, type FROM attachments
		WHERE message IN (SELECT value FROM json_each(?)) ORDER BY id`, jsonIDs(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a Attachment
		if err := rows.Scan(&a.ID, &a.Message, &a.Name, &a.Hash, &a.Size, &a.Type); err != nil {
			return err
		}
		e := &es[idx[a.Message]]
		e.Files = append(e.Files, a)
	}
	return rows.Err()
}

// jsonIDs makes a JSON array of numbers, for "IN (SELECT value FROM
// json_each(?))": one statement text for lists of any length.
func jsonIDs(ids []int64) string {
	b := []byte{'['}
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// nodeNames caches node display names for one request.
type nodeNames struct {
	n     *Node
	ctx   context.Context
	cache map[bundle.NodeID]string
}

func (c *nodeNames) name(id bundle.NodeID) string {
	if s, ok := c.cache[id]; ok {
		return s
	}
	if c.cache == nil {
		c.cache = map[bundle.NodeID]string{}
	}
	s := c.n.nodeName(c.ctx, c.n.db, id)
	c.cache[id] = s
	return s
}
