package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"ferry/bundle"
)

// Message states. An outgoing message moves queued → carried → delivered
// → read, or ends failed or expired; an incoming one is received, then read.
const (
	StateQueued    = "queued"
	StateCarried   = "carried"
	StateDelivered = "delivered"
	StateRead      = "read"
	StateFailed    = "failed"
	StateExpired   = "expired"
	StateReceived  = "received"
)

// Address names a user at a node: "anna@river".
type Address struct {
	User string
	Node string
}

func (a Address) String() string { return a.User + "@" + a.Node }

// ParseAddress parses "user@node".
func ParseAddress(s string) (Address, error) {
	u, nd, ok := strings.Cut(s, "@")
	if !ok || !ValidUser(u) || !ValidName(nd) {
		return Address{}, fmt.Errorf("node: bad address %q: want user@node", s)
	}
	return Address{User: u, Node: nd}, nil
}

// MessageID names a message across the network: its origin node and the
// origin's number for it.
type MessageID struct {
	Origin bundle.NodeID
	Seq    uint64
}

func (m MessageID) String() string { return fmt.Sprintf("%s:%d", m.Origin.Short(), m.Seq) }

// Send queues a direct message from a local user to a user at this or
// another node. A message to this node is delivered at once; one to a peer
// waits for the next contact, when it is sealed into a bundle with every
// other message pending for that peer. [Node.Post] does more: room posts,
// replies, attachments.
func (n *Node) Send(ctx context.Context, from string, to Address, body string) (MessageID, error) {
	_, id, err := n.Post(ctx, Draft{From: from, To: to, Body: body})
	return id, err
}

// InboxMessage is a message as a user sees it.
type InboxMessage struct {
	ID        string     `json:"id"`
	Direction string     `json:"direction"` // "in" or "out"
	From      string     `json:"from"`      // user@node
	To        string     `json:"to"`        // user@node
	Body      string     `json:"body"`
	Sent      time.Time  `json:"sent"`
	Received  *time.Time `json:"received,omitempty"`
	State     string     `json:"state"`
	StateAt   time.Time  `json:"state_at"`
	Carrier   string     `json:"carrier,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// Inbox returns the direct messages a local user sent or received, oldest
// first.
func (n *Node) Inbox(ctx context.Context, user string) ([]InboxMessage, error) {
	if ok, err := userExists(ctx, n.db, user); err != nil || !ok {
		return nil, errors.Join(err, fmt.Errorf("%w %q at %s", ErrUnknownUser, user, n.name))
	}
	self := n.ID()
	rows, err := n.db.QueryContext(ctx, `SELECT origin, seq, from_user, to_node, to_user, body, created,
		received_at, state, state_at, COALESCE(carrier, ''), COALESCE(reason, '')
		FROM messages
		WHERE room = 0 AND ((to_node = ? AND to_user = ?) OR (origin = ? AND from_user = ?))
		ORDER BY created, origin, seq`, self[:], user, self[:], user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names := map[bundle.NodeID]string{}
	name := func(id bundle.NodeID) string {
		if s, ok := names[id]; ok {
			return s
		}
		s := n.nodeName(ctx, n.db, id)
		names[id] = s
		return s
	}
	var out []InboxMessage
	for rows.Next() {
		var origin, toNode []byte
		var seq uint64
		var from, to, body, state, carrier, reason string
		var created, stateAt int64
		var received sql.NullInt64
		if err := rows.Scan(&origin, &seq, &from, &toNode, &to, &body, &created, &received, &state, &stateAt, &carrier, &reason); err != nil {
			return nil, err
		}
		o := bundle.NodeID(origin)
		m := InboxMessage{
			ID:        MessageID{Origin: o, Seq: seq}.String(),
			Direction: "in",
			From:      from + "@" + name(o),
			To:        to + "@" + name(bundle.NodeID(toNode)),
			Body:      body,
			Sent:      time.UnixMilli(created).UTC(),
			State:     state,
			StateAt:   time.UnixMilli(stateAt).UTC(),
			Carrier:   carrier,
			Reason:    reason,
		}
		if o == self && from == user {
			m.Direction = "out"
		}
		if received.Valid {
			t := time.UnixMilli(received.Int64).UTC()
			m.Received = &t
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
