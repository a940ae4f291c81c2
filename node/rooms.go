package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ferry/bundle"
)

// Room errors.
var (
	// ErrUnknownRoom means this node has no room of that name.
	ErrUnknownRoom = errors.New("node: unknown room")
	// ErrRoomExists means a room of that name exists already.
	ErrRoomExists = errors.New("node: a room of that name exists already")
)

// Room is a community room: every user of this node may read and post in
// it. A room shared with peer communities (which share a room of the same
// name back) also shows their members' posts, and sends ours to them.
type Room struct {
	ID        int64
	Name      string // on the wire: what peers call the room too
	Title     string // shown to people: any text
	Topic     string
	CreatedBy string
	CreatedAt time.Time
	Peers     []string // the peer communities it is shared with, by name

	peerIDs []bundle.NodeID
}

// RoomSummary is a room as a user's room list shows it.
type RoomSummary struct {
	Room
	Unread int   // messages the user has not read, at most MaxUnread+1
	LastID int64 // the newest message's local number, or 0
	Last   time.Time
}

// MaxUnread is the largest unread count reported exactly; more shows as
// MaxUnread+1 ("20+"), so that counting stays cheap in rooms of thousands
// of unread messages (the room list counts every room at each view).
const MaxUnread = 20

// Bounds of room labels, in bytes.
const (
	MaxTitleLen = 80
	MaxTopicLen = 300
)

// ValidRoom reports whether s is a valid room name, the one peers see:
// the same rules as a user name.
func ValidRoom(s string) bool { return ValidUser(s) }

// CreateRoom creates a room of this node.
func (n *Node) CreateRoom(ctx context.Context, name, title, topic, by string) (*Room, error) {
	if !ValidRoom(name) {
		return nil, fmt.Errorf("node: bad room name %q: use 1-32 lowercase letters, digits, '.', '_' and '-'", name)
	}
	title, topic = CleanLabel(title, MaxTitleLen), CleanLabel(topic, MaxTopicLen)
	if title == "" {
		title = name
	}
	now := n.now()
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO rooms (name, title, topic, created_by, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, name, title, topic, by, now.UnixMilli())
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("%w: %q", ErrRoomExists, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return n.Room(ctx, name)
}

// UpdateRoom changes a room's title and topic.
func (n *Node) UpdateRoom(ctx context.Context, name, title, topic string) error {
	title, topic = CleanLabel(title, MaxTitleLen), CleanLabel(topic, MaxTopicLen)
	if title == "" {
		title = name
	}
	return n.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rooms SET title = ?, topic = ? WHERE name = ?`, title, topic, name)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("%w %q", ErrUnknownRoom, name)
		}
		return nil
	})
}

// Room returns the room of that name.
func (n *Node) Room(ctx context.Context, name string) (*Room, error) {
	snap, err := n.roomsNow(ctx)
	if err != nil {
		return nil, err
	}
	i, ok := snap.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRoom, name)
	}
	return copyRoom(&snap.rooms[i].Room), nil
}

// roomVisible is the condition on a messages row m that it shows in room
// r: a post made here, or one from a peer the room is shared with. With
// "m.room = 1 AND m.copy_of IS NULL" it uses the index messages_room_view.
const roomVisible = `m.to_user = r.name AND m.room = 1 AND m.copy_of IS NULL
	AND (m.origin = ?1 OR m.origin IN (SELECT peer FROM room_peers WHERE room = r.id))`

// Rooms lists the rooms by title, with what user has not read in each.
// What a user posts counts as read (Post marks it).
func (n *Node) Rooms(ctx context.Context, user string) ([]RoomSummary, error) {
	snap, err := n.roomsNow(ctx)
	if err != nil {
		return nil, err
	}
	marks, err := n.marksOf(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]RoomSummary, len(snap.rooms))
	for i := range snap.rooms {
		r := &snap.rooms[i]
		out[i] = RoomSummary{Room: *copyRoom(&r.Room), LastID: r.last, Last: r.lastTime,
			Unread: r.unread(marks[roomConv(r.Name)])}
	}
	return out, nil
}

// Unread counts what a user has not read: rooms with unread posts, and
// unread direct messages (at most MaxUnread+1).
type Unread struct {
	Rooms  int
	Direct int
}

// Unread returns what user has not read, cheaply enough for every page:
// the rooms are compared in memory (node/roomcache.go).
func (n *Node) Unread(ctx context.Context, user string) (Unread, error) {
	var u Unread
	snap, err := n.roomsNow(ctx)
	if err != nil {
		return u, err
	}
	marks, err := n.marksOf(ctx, user)
	if err != nil {
		return u, err
	}
	for i := range snap.rooms {
		if r := &snap.rooms[i]; r.last > marks[roomConv(r.Name)] {
			u.Rooms++
		}
	}
	self := n.ID()
	row, err := n.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM messages m
			LEFT JOIN reads rd ON rd.user = ?2 AND rd.conv = 'dm:' || lower(hex(m.origin)) || ':' || m.from_user
			WHERE m.to_user = ?2 AND m.room = 0 AND m.to_node = ?1 AND NOT (m.origin = ?1 AND m.from_user = ?2)
			AND m.id > `+dmReadMark("m.origin", "m.from_user", "rd", "?4")+` LIMIT ?3)`, self[:], user, MaxUnread+1, n.pendingReads(user))
	if err != nil {
		return u, err
	}
	return u, row.Scan(&u.Direct)
}

// ShareRoom shares a room with a peer community: posts made here from now
// on travel to it, and its posts in its room of the same name show here.
func (n *Node) ShareRoom(ctx context.Context, room, peer string) error {
	return n.setRoomPeer(ctx, room, peer, true)
}

// UnshareRoom stops sharing a room with a peer community.
func (n *Node) UnshareRoom(ctx context.Context, room, peer string) error {
	return n.setRoomPeer(ctx, room, peer, false)
}

func (n *Node) setRoomPeer(ctx context.Context, room, peer string, share bool) error {
	r, err := n.Room(ctx, room)
	if err != nil {
		return err
	}
	p, err := n.Peer(ctx, peer)
	if err != nil {
		return err
	}
	q := `INSERT INTO room_peers (room, peer) VALUES (?, ?) ON CONFLICT DO NOTHING`
	if !share {
		q = `DELETE FROM room_peers WHERE room = ? AND peer = ?`
	}
	return n.withTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, r.ID, p.ID[:])
		return err
	})
}

// roomAccepts reports whether a room message from source belongs in a room
// of this node: the room exists and is shared with source.
func roomAccepts(ctx context.Context, q querier, room string, source bundle.NodeID) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM rooms r JOIN room_peers rp ON rp.room = r.id
		WHERE r.name = ? AND rp.peer = ?`, room, source[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
