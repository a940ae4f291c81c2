package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"unicode/utf8"

	"ferry/bundle"
)

// Draft is a message a local user writes: a direct message to a user here
// or at a peer (To), or a post in a room of this node (Room).
type Draft struct {
	From string
	To   Address // for a direct message
	Room string  // for a room post, instead of To
	// ReplyTo is the local number (ChatMessage.ID) of the message answered, or
	// 0. It must belong to the same conversation.
	ReplyTo int64
	Body    string
	// Attachments are files that go with the message. A message to another
	// community (a direct message, or a post in a room shared with one)
	// carries them in its bundle: each at most bundle.MaxAttachmentSize.
	Attachments []NewFile
	// Quota bounds, in bytes, what the sender may store here with the
	// attachments counted; 0 means no bound.
	Quota int64
}

// ErrNotInConversation means a reply names a message of another
// conversation, or one this node does not have.
var ErrNotInConversation = errors.New("node: the message replied to is not in this conversation")

// MaxRemoteAttachment bounds a file attached to a message for another
// community, in bytes: it travels in one bundle record.
const MaxRemoteAttachment = bundle.MaxAttachmentSize

// ErrRemoteAttachment means a file too large to travel in a bundle was
// attached to a message for another community.
var ErrRemoteAttachment = fmt.Errorf("node: a file sent to another community may be at most %d MB; share a larger file here, or send it by other means", bundle.MaxAttachmentSize>>20)

// Post stores a message from a local user. A direct message to this node,
// and a room post, are delivered at once; a direct message to a peer, and
// the copy of a room post for each peer community the room is shared
// with, wait for the next contact, when they are sealed into a bundle with
// everything else pending for that peer. It returns the message's local
// number and its network-wide ID.
func (n *Node) Post(ctx context.Context, d Draft) (int64, MessageID, error) {
	if d.Body == "" && len(d.Attachments) == 0 {
		return 0, MessageID{}, errors.New("node: empty message")
	}
	if len(d.Body) > bundle.MaxBodyLen || !utf8.ValidString(d.Body) {
		return 0, MessageID{}, fmt.Errorf("node: message longer than %d bytes or not UTF-8", bundle.MaxBodyLen)
	}
	var dest bundle.NodeID
	var room *Room
	var err error
	if d.Room != "" {
		if room, err = n.Room(ctx, d.Room); err != nil {
			return 0, MessageID{}, err
		}
		dest = n.ID()
	} else {
		if dest, err = n.nodeID(ctx, d.To.Node); err != nil {
			return 0, MessageID{}, err
		}
	}
	if dest != n.ID() || room != nil && len(room.peerIDs) > 0 {
		if err := n.checkTravel(ctx, d.Attachments); err != nil {
			return 0, MessageID{}, err
		}
	}
	id := MessageID{Origin: n.ID()}
	var rowid int64
	err = n.withTx(ctx, func(tx *sql.Tx) error {
		p := poster{ctx: ctx, n: n, tx: tx, d: &d, dest: dest, room: room, now: n.now().UnixMilli()}
		var err error
		rowid, id.Seq, err = p.post()
		return err
	})
	if err != nil {
		return 0, MessageID{}, err
	}
	conv := dmConv(dest, d.To.User)
	if room != nil {
		conv = roomConv(room.Name)
	}
	n.noteRead(d.From, conv, rowid)
	return rowid, id, nil
}

// poster stores one Draft inside a write transaction.
type poster struct {
	ctx  context.Context
	n    *Node
	tx   *sql.Tx
	d    *Draft
	dest bundle.NodeID
	room *Room
	now  int64
}

func (p *poster) post() (int64, uint64, error) {
	ctx, tx, d, self := p.ctx, p.tx, p.d, p.n.ID()
	if ok, err := userExists(ctx, tx, d.From); err != nil {
		return 0, 0, err
	} else if !ok {
		return 0, 0, fmt.Errorf("%w %q at %s", ErrUnknownUser, d.From, p.n.name)
	}
	local := p.dest == self
	if p.room == nil && local {
		if ok, err := userExists(ctx, tx, d.To.User); err != nil || !ok {
			return 0, 0, errors.Join(err, fmt.Errorf("%w %q at %s", ErrUnknownUser, d.To.User, p.n.name))
		}
	}
	reply, err := p.reply()
	if err != nil {
		return 0, 0, err
	}
	seq, err := nextSeq(ctx, tx, self)
	if err != nil {
		return 0, 0, err
	}
	to, isRoom := d.To.User, p.room != nil
	if isRoom {
		to = p.room.Name
	}
	state, received := StateQueued, any(nil)
	if local {
		state, received = StateDelivered, p.now
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO messages
		(origin, seq, from_user, to_node, to_user, room, reply_origin, reply_seq, body, created, received_at, state, state_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		self[:], seq, d.From, p.dest[:], to, isRoom, reply.origin, reply.seq, d.Body, p.now, received, state, p.now)
	if err != nil {
		return 0, 0, err
	}
	rowid, err := res.LastInsertId()
	if err != nil {
		return 0, 0, err
	}
	if isRoom {
		if err := p.copies(rowid, seq, reply); err != nil {
			return 0, 0, err
		}
	}
	// What one writes counts as read, and so does what came before it.
	conv := dmConv(p.dest, d.To.User)
	if isRoom {
		conv = roomConv(p.room.Name)
	}
	if err := markRead(ctx, tx, d.From, conv, rowid); err != nil {
		return 0, 0, err
	}
	if err := p.n.attach(ctx, tx, rowid, d.From, d.Attachments, d.Quota); err != nil {
		return 0, 0, err
	}
	return rowid, seq, nil
}

// replyRef is the wire reference of the message replied to, as SQL values.
type replyRef struct {
	origin []byte
	seq    any
	// local is the display row of the message replied to.
	local int64
}

// reply resolves Draft.ReplyTo and checks that it is in the conversation.
func (p *poster) reply() (replyRef, error) {
	if p.d.ReplyTo == 0 {
		return replyRef{}, nil
	}
	r, err := p.n.loadRow(p.ctx, p.tx, p.d.ReplyTo)
	if errors.Is(err, ErrNoMessage) {
		return replyRef{}, ErrNotInConversation
	}
	if err != nil {
		return replyRef{}, err
	}
	want := dmConv(p.dest, p.d.To.User)
	if p.room != nil {
		want = roomConv(p.room.Name)
	}
	conv, err := p.n.visibleConv(p.ctx, p.tx, r, p.d.From)
	if err != nil {
		return replyRef{}, err
	}
	if conv != want {
		return replyRef{}, ErrNotInConversation
	}
	return replyRef{origin: r.origin, seq: r.seq, local: r.id}, nil
}

// copies queues the copy of a room post for each peer the room is shared
// with. A reply to a message that came from that peer names the peer's
// message; a reply to a post made here names that peer's copy of it.
func (p *poster) copies(rowid int64, seq uint64, reply replyRef) error {
	ctx, tx, d, self := p.ctx, p.tx, p.d, p.n.ID()
	for _, peer := range p.room.peerIDs {
		ro, rs := reply.origin, reply.seq
		if reply.local != 0 && bundle.NodeID(reply.origin) == self {
			// Our own post: the peer knows it by the seq of its copy.
			var cs int64
			err := tx.QueryRowContext(ctx, `SELECT seq FROM messages WHERE copy_of = ? AND to_node = ?`, reply.local, peer[:]).Scan(&cs)
			if errors.Is(err, sql.ErrNoRows) {
				ro, rs = nil, nil
			} else if err != nil {
				return err
			} else {
				rs = cs
			}
		}
		seq++
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages
			(origin, seq, from_user, to_node, to_user, room, reply_origin, reply_seq, body, created, state, state_at, copy_of)
			VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)`,
			self[:], seq, d.From, peer[:], p.room.Name, ro, rs, d.Body, p.now, StateQueued, p.now, rowid); err != nil {
			return err
		}
	}
	return nil
}

// nextSeq returns the number of origin's (this node's) next message
// (seal.go: sequence numbers).
func nextSeq(ctx context.Context, q querier, origin bundle.NodeID) (uint64, error) {
	return nextMessageSeq(ctx, q, origin)
}

// nodeID returns the ID of this node or of the peer with that name.
func (n *Node) nodeID(ctx context.Context, name string) (bundle.NodeID, error) {
	if name == n.name {
		return n.ID(), nil
	}
	p, err := n.Peer(ctx, name)
	if err != nil {
		return bundle.NodeID{}, err
	}
	return p.ID, nil
}

// checkTravel checks that attachments can travel in a bundle: each at most
// bundle.MaxAttachmentSize, with a name.
func (n *Node) checkTravel(ctx context.Context, fs []NewFile) error {
	for _, f := range fs {
		size := int64(-1)
		if f.Blob != nil {
			size = f.Blob.Size
		} else if err := n.db.QueryRowContext(ctx, `SELECT size FROM blobs WHERE hash = ?`, f.Hash).Scan(&size); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if size > bundle.MaxAttachmentSize {
			return ErrRemoteAttachment
		}
	}
	return nil
}
