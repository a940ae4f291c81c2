package node

import (
	"context"
	"strings"
	"time"

	"ferry/bundle"
)

// Marks around the matched words of a search snippet. They are control
// characters, which message text shown by the web inbox never holds
// unescaped: the inbox splits the snippet on them.
const (
	MatchStart = "\x02"
	MatchEnd   = "\x03"
)

// Hit is a message a search found.
type Hit struct {
	ID      int64 // the message's local number
	From    Address
	Room    string  // a room post's room
	With    Address // a direct message's other party, as the searcher sees it
	Sent    time.Time
	Snippet string // the text around the matches, marked with MatchStart and MatchEnd
}

// Search finds the messages user may see (posts in rooms, and the user's
// own direct messages) whose text has every word of query, best first.
// The last word matches as a prefix. Query syntax is not interpreted:
// quotes, stars and operators are words like any other.
func (n *Node) Search(ctx context.Context, user, query string, limit int) ([]Hit, error) {
	q := ftsQuery(query)
	if q == "" {
		return nil, nil
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	self := n.ID()
	rows, err := n.db.QueryContext(ctx, `SELECT m.id, m.origin, m.from_user, m.to_node, m.to_user, m.room, m.created,
		snippet(messages_fts, 0, ?1, ?2, '…', 16)
		FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
		WHERE messages_fts MATCH ?3 AND m.copy_of IS NULL AND (
			(m.room = 1 AND m.to_node = ?4 AND EXISTS (SELECT 1 FROM rooms r WHERE r.name = m.to_user
				AND (m.origin = ?4 OR m.origin IN (SELECT peer FROM room_peers WHERE room = r.id))))
			OR (m.room = 0 AND ((m.origin = ?4 AND m.from_user = ?5) OR (m.to_node = ?4 AND m.to_user = ?5))))
		ORDER BY rank LIMIT ?6`, MatchStart, MatchEnd, q, self[:], user, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names := nodeNames{n: n, ctx: ctx}
	var out []Hit
	for rows.Next() {
		var h Hit
		var origin, toNode []byte
		var toUser string
		var room bool
		var created int64
		if err := rows.Scan(&h.ID, &origin, &h.From.User, &toNode, &toUser, &room, &created, &h.Snippet); err != nil {
			return nil, err
		}
		h.From.Node = names.name(bundle.NodeID(origin))
		h.Sent = timeMilli(created)
		switch {
		case room:
			h.Room = toUser
		case bundle.NodeID(origin) == self && h.From.User == user:
			h.With = Address{User: toUser, Node: names.name(bundle.NodeID(toNode))}
		default:
			h.With = h.From
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// SearchFiles finds, by name, the files user may see: their own and the
// shared ones.
func (n *Node) SearchFiles(ctx context.Context, user, query string, limit int) ([]File, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, nil
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query) + "%"
	return n.queryFiles(ctx, `(owner = ? OR owner IS NULL) AND name LIKE ? ESCAPE '\' ORDER BY created_at DESC LIMIT ?`,
		user, like, limit)
}

// FTSQuery turns what a person typed into an FTS5 query, as the inbox's
// search does (package archive searches its own index with it).
func FTSQuery(s string) string { return ftsQuery(s) }

// ftsQuery turns what a person typed into an FTS5 query: each word a
// quoted string, all required, the last one a prefix.
func ftsQuery(s string) string {
	words := strings.Fields(s)
	if len(words) > 12 {
		words = words[:12]
	}
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + strings.ReplaceAll(w, `"`, `""`) + `"`)
		if i == len(words)-1 {
			b.WriteByte('*')
		}
	}
	return b.String()
}
