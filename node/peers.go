package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"ferry/bundle"
)

// ErrUnknownPeer means no trusted peer has that name or ID.
var ErrUnknownPeer = errors.New("node: unknown peer")

// Peer is a node this node trusts: it accepts the peer's bundles and can
// encrypt to it.
type Peer struct {
	Name      string
	ID        bundle.NodeID
	Recipient string
	Card      string
	AddedAt   time.Time
}

// AddPeer trusts the node that card describes, under the card's name or
// under alias when it is not empty. Adding the same card again is a no-op;
// a newer card of a known peer replaces the old one.
func (n *Node) AddPeer(ctx context.Context, cardText, alias string) (*Peer, error) {
	c, err := ParseCard(cardText)
	if err != nil {
		return nil, err
	}
	if c.ID == n.ID() {
		return nil, errors.New("node: that card is this node's own")
	}
	name := c.Name
	if alias != "" {
		if !ValidName(alias) {
			return nil, fmt.Errorf("node: bad peer name %q", alias)
		}
		name = alias
	}
	if name == n.name {
		return nil, fmt.Errorf("node: peer name %q is this node's own name; add it under another name", name)
	}
	p := &Peer{Name: name, ID: c.ID, Recipient: c.Recipient, Card: cardText, AddedAt: n.now()}
	err = n.withTx(ctx, func(tx *sql.Tx) error {
		var other []byte
		err := tx.QueryRowContext(ctx, `SELECT id FROM peers WHERE name = ?`, name).Scan(&other)
		if err == nil && bundle.NodeID(other) != c.ID {
			return fmt.Errorf("node: another peer is already called %q; add this one under another name", name)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO peers (id, name, recipient, card, added_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, recipient = excluded.recipient, card = excluded.card`,
			c.ID[:], name, c.Recipient, cardText, p.AddedAt.UnixMilli())
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Peers lists the trusted peers by name.
func (n *Node) Peers(ctx context.Context) ([]Peer, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT id, name, recipient, card, added_at FROM peers ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ps []Peer
	for rows.Next() {
		var p Peer
		var id []byte
		var added int64
		if err := rows.Scan(&id, &p.Name, &p.Recipient, &p.Card, &added); err != nil {
			return nil, err
		}
		p.ID = bundle.NodeID(id)
		p.AddedAt = time.UnixMilli(added)
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// Peer returns the trusted peer with that name, or with that ID in hex.
func (n *Node) Peer(ctx context.Context, nameOrID string) (*Peer, error) {
	q := `SELECT id, name, recipient, card, added_at FROM peers WHERE name = ?`
	arg := any(nameOrID)
	if id, err := bundle.ParseNodeID(nameOrID); err == nil {
		q, arg = `SELECT id, name, recipient, card, added_at FROM peers WHERE id = ?`, id[:]
	}
	var p Peer
	var id []byte
	var added int64
	err := n.db.QueryRowContext(ctx, q, arg).Scan(&id, &p.Name, &p.Recipient, &p.Card, &added)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w %q: add its card with 'ferry peer add'", ErrUnknownPeer, nameOrID)
	}
	if err != nil {
		return nil, err
	}
	p.ID = bundle.NodeID(id)
	p.AddedAt = time.UnixMilli(added)
	return &p, nil
}

// nodeName returns a display name for a node: this node's name, a peer's
// name, or a short ID.
func (n *Node) nodeName(ctx context.Context, q querier, id bundle.NodeID) string {
	if id == n.ID() {
		return n.name
	}
	var name string
	if err := q.QueryRowContext(ctx, `SELECT name FROM peers WHERE id = ?`, id[:]).Scan(&name); err == nil {
		return name
	}
	return id.Short()
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var userRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// ValidUser reports whether s is a valid user name: 1 to 32 lowercase
// letters, digits, dots, dashes and underscores, starting with a letter
// or digit.
func ValidUser(s string) bool { return userRE.MatchString(s) }

// ErrUnknownUser means the node has no such user.
var ErrUnknownUser = errors.New("node: unknown user")

// AddUser creates a user of this node.
func (n *Node) AddUser(ctx context.Context, name string) error {
	return n.AddUserWith(ctx, name, func(*sql.Tx) error { return nil })
}

// Users lists the node's users by name.
func (n *Node) Users(ctx context.Context) ([]string, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT name FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var us []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	return us, rows.Err()
}

func userExists(ctx context.Context, q querier, name string) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
