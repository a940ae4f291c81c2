package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"ferry/bundle"
)

// The directory is this node's picture of the network, built from node
// announcements (announce.go): the newest unexpired announcement of each
// node it has taken in, its own included.
//
// Use it from other packages (routing, the simulator, the map) through:
//
//	Directory(ctx)             every community, with its links and trust
//	DirectoryEntry(ctx, name)  one community, by name or ID
//	Approve(ctx, name, alias)  trust an introduced community (as peer add)
//	Links(ctx)                 every contact between two communities that
//	                           an announcement reported, newest first
//
// An entry's Trust says how this node stands with it: TrustSelf, TrustPeer
// (added by card or approved: its messages are accepted and it can be
// written to) or TrustIntroduced (known only because an announcement in
// the directory named it: its announcements are taken in and carried, but
// nothing else, until an admin approves it).

// ErrNotInDirectory means the directory has no unexpired entry by that
// name or ID.
var ErrNotInDirectory = errors.New("node: not in the network directory")

// Trust is how this node stands with a community of its directory.
type Trust string

// Trust levels.
const (
	TrustSelf       Trust = "self"
	TrustPeer       Trust = "peer"       // trusted: added by card or approved
	TrustIntroduced Trust = "introduced" // announced, not trusted until approved
)

// DirectoryEntry is one community of the network, as its newest
// announcement describes it.
type DirectoryEntry struct {
	ID       bundle.NodeID
	Name     string    // the name on its card
	PeerName string    // what this node calls it, when it is a peer
	Card     string    // its signed card
	Location *Location // tenths of a degree; nil when not announced
	Carriers []string
	Issued   time.Time // when it made the announcement
	Expires  time.Time // when the announcement expires; zero: never
	Received time.Time // when this node took it in
	Bundle   bundle.ID // the announcement's bundle
	Trust    Trust
	// IntroducedBy names the communities whose announcements list this
	// one: trusted peers first, then by name. Empty for peers met only by
	// card.
	IntroducedBy []string
	// Links are the contacts it announced, newest first.
	Links []Link
	// Queue is what this node holds waiting for it.
	Queue Queue
}

// Link is a contact between two communities that an announcement reported.
type Link struct {
	From, To         bundle.NodeID
	FromName, ToName string // names as the directory knows them
	Last             time.Time
	Carrier          string
	Bytes            uint64
}

// Queue is what waits at this node for one community.
type Queue struct {
	Messages int   // messages to it not yet sealed or carried
	Bundles  int   // bundles for it held for carrying
	Bytes    int64 // their size
}

// DisplayName is what this node calls the community: its peer name if it
// has one, else the name on its card.
func (e *DirectoryEntry) DisplayName() string {
	if e.PeerName != "" {
		return e.PeerName
	}
	return e.Name
}

// Directory lists every community in the directory with an unexpired
// announcement, by name.
func (n *Node) Directory(ctx context.Context) ([]DirectoryEntry, error) {
	return n.directory(ctx, "", nil)
}

// DirectoryEntry returns one community of the directory, by the name on
// its card, its peer name or its ID in hex.
func (n *Node) DirectoryEntry(ctx context.Context, nameOrID string) (*DirectoryEntry, error) {
	es, err := n.Directory(ctx)
	if err != nil {
		return nil, err
	}
	id, idErr := bundle.ParseNodeID(nameOrID)
	var found []DirectoryEntry
	for _, e := range es {
		if (idErr == nil && e.ID == id) || e.PeerName == nameOrID || (e.PeerName == "" && e.Name == nameOrID) {
			return &e, nil
		}
		if e.Name == nameOrID {
			found = append(found, e)
		}
	}
	if len(found) == 1 {
		return &found[0], nil
	}
	if len(found) > 1 {
		return nil, fmt.Errorf("node: %d communities of the directory are called %q: name one by its ID", len(found), nameOrID)
	}
	return nil, fmt.Errorf("%w: %q", ErrNotInDirectory, nameOrID)
}

func (n *Node) directory(ctx context.Context, where string, args []any) ([]DirectoryEntry, error) {
	now := n.now()
	self := n.ID()
	rows, err := n.db.QueryContext(ctx, `SELECT d.node, d.name, COALESCE(p.name, ''), d.card, d.issued, d.expires, d.lat, d.lon,
		d.carriers, d.bundle, d.received_at, p.id IS NOT NULL
		FROM directory d LEFT JOIN peers p ON p.id = d.node
		WHERE (d.expires = 0 OR d.expires > ?)`+where+` ORDER BY d.name, d.node`, append([]any{now.Unix()}, args...)...)
	if err != nil {
		return nil, err
	}
	var es []DirectoryEntry
	for rows.Next() {
		var e DirectoryEntry
		var id, b []byte
		var issued, expires, received int64
		var lat, lon sql.NullInt64
		var carriers string
		var peer bool
		if err := rows.Scan(&id, &e.Name, &e.PeerName, &e.Card, &issued, &expires, &lat, &lon, &carriers, &b, &received, &peer); err != nil {
			rows.Close()
			return nil, err
		}
		e.ID, e.Bundle = bundle.NodeID(id), bundle.ID(b)
		e.Issued, e.Received = time.Unix(issued, 0).UTC(), time.UnixMilli(received).UTC()
		if expires != 0 {
			e.Expires = time.Unix(expires, 0).UTC()
		}
		if lat.Valid && lon.Valid {
			e.Location = fromTenths(&bundle.Tenths{Lat: int(lat.Int64), Lon: int(lon.Int64)})
		}
		if carriers != "" {
			e.Carriers = strings.Split(carriers, ",")
		}
		switch {
		case e.ID == self:
			e.Trust = TrustSelf
		case peer:
			e.Trust = TrustPeer
		default:
			e.Trust = TrustIntroduced
		}
		es = append(es, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	links, err := n.Links(ctx)
	if err != nil {
		return nil, err
	}
	names := map[bundle.NodeID]string{}
	trusted := map[bundle.NodeID]bool{}
	for _, e := range es {
		names[e.ID] = e.DisplayName()
		trusted[e.ID] = e.Trust != TrustIntroduced
	}
	for i := range es {
		e := &es[i]
		for _, l := range links {
			if l.From == e.ID {
				e.Links = append(e.Links, l)
			}
			if l.To == e.ID && l.From != self && e.Trust != TrustSelf {
				e.IntroducedBy = append(e.IntroducedBy, names[l.From])
			}
		}
		slices.SortFunc(e.IntroducedBy, func(a, b string) int {
			return strings.Compare(a, b)
		})
		e.IntroducedBy = slices.Compact(e.IntroducedBy)
		// Trusted introducers first.
		slices.SortStableFunc(e.IntroducedBy, func(a, b string) int {
			ta, tb := trustedName(es, a), trustedName(es, b)
			switch {
			case ta && !tb:
				return -1
			case tb && !ta:
				return 1
			}
			return 0
		})
		if e.Queue, err = n.queueFor(ctx, e.ID); err != nil {
			return nil, err
		}
	}
	return es, nil
}

func trustedName(es []DirectoryEntry, name string) bool {
	for _, e := range es {
		if e.DisplayName() == name {
			return e.Trust != TrustIntroduced
		}
	}
	return false
}

// Links lists every contact reported by an unexpired announcement in the
// directory, newest first.
func (n *Node) Links(ctx context.Context) ([]Link, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT l.node, l.heard, COALESCE(pf.name, d.name), COALESCE(pt.name, dt.name, l.name),
		l.last, l.carrier, l.bytes
		FROM directory_links l JOIN directory d ON d.node = l.node
		LEFT JOIN directory dt ON dt.node = l.heard
		LEFT JOIN peers pf ON pf.id = l.node LEFT JOIN peers pt ON pt.id = l.heard
		WHERE d.expires = 0 OR d.expires > ?
		ORDER BY l.last DESC, l.node, l.heard`, n.now().Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	self := n.ID()
	var out []Link
	for rows.Next() {
		var l Link
		var from, to []byte
		var last, size int64
		if err := rows.Scan(&from, &to, &l.FromName, &l.ToName, &last, &l.Carrier, &size); err != nil {
			return nil, err
		}
		l.From, l.To, l.Last, l.Bytes = bundle.NodeID(from), bundle.NodeID(to), time.Unix(last, 0).UTC(), uint64(max(size, 0))
		if l.To == self {
			l.ToName = n.name
		}
		if l.From == self {
			l.FromName = n.name
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// queueFor counts what this node holds for a community.
func (n *Node) queueFor(ctx context.Context, id bundle.NodeID) (Queue, error) {
	var q Queue
	self := n.ID()
	if id == self {
		return q, nil
	}
	err := n.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM messages WHERE origin = ?2 AND to_node = ?1 AND state = 'queued'),
		(SELECT COUNT(*) FROM bundles WHERE dest_type = 1 AND dest = ?1 AND state IN ('outbound', 'carry')),
		(SELECT COALESCE(SUM(size), 0) FROM bundles WHERE dest_type = 1 AND dest = ?1 AND state IN ('outbound', 'carry'))`,
		id[:], self[:]).Scan(&q.Messages, &q.Bundles, &q.Bytes)
	return q, err
}

// Approve trusts a community of the directory, from the card in its
// announcement, as 'ferry peer add' would: from then on this node accepts
// its bundles and can write to it. alias, when not empty, names it.
func (n *Node) Approve(ctx context.Context, nameOrID, alias string) (*Peer, error) {
	e, err := n.DirectoryEntry(ctx, nameOrID)
	if err != nil {
		return nil, err
	}
	switch e.Trust {
	case TrustSelf:
		return nil, errors.New("node: that is this node")
	case TrustPeer:
		return n.Peer(ctx, e.ID.String())
	}
	return n.AddPeer(ctx, e.Card, alias)
}
