package transfer

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// In is a transfer this node received, wholly or in part.
type In struct {
	ID       string    `json:"id"`
	From     string    `json:"from"` // the sender's name here, or its short ID
	Name     string    `json:"name"`
	Folder   string    `json:"folder"` // where its files are
	Note     string    `json:"note,omitempty"`
	Files    int64     `json:"files"` // the whole transfer's, as announced
	Bytes    int64     `json:"bytes"`
	Parts    int64     `json:"parts"`
	GotFiles int64     `json:"got_files"`
	GotBytes int64     `json:"got_bytes"`
	GotParts int64     `json:"got_parts"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Complete bool      `json:"complete"`
}

// Out is a transfer this node sent.
type Out struct {
	ID        string    `json:"id"`
	To        string    `json:"to"`
	Name      string    `json:"name"`
	Files     int64     `json:"files"`
	Bytes     int64     `json:"bytes"`
	Parts     int64     `json:"parts"`
	Queued    int64     `json:"queued"`    // parts sealed into bundles
	Delivered int64     `json:"delivered"` // parts the receiver confirmed
	Created   time.Time `json:"created"`
}

// ListIn returns the transfers n received, newest first.
func ListIn(ctx context.Context, n *node.Node) ([]In, error) {
	rows, err := n.DB().QueryContext(ctx, `SELECT t.id, t.source, t.name, t.folder, t.note, t.files, t.bytes, t.parts,
		t.first_at, t.last_at, count(DISTINCT p.part), coalesce(sum(p.files), 0), coalesce(sum(p.bytes), 0)
		FROM transfers_in t LEFT JOIN transfer_parts_in p ON p.transfer = t.id
		GROUP BY t.id ORDER BY t.last_at DESC, t.id`)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer rows.Close()
	names := peerNames(ctx, n)
	root, err := filepath.Abs(Received(n))
	if err != nil {
		root = Received(n)
	}
	var out []In
	for rows.Next() {
		var t In
		var id, src []byte
		var first, last int64
		if err := rows.Scan(&id, &src, &t.Name, &t.Folder, &t.Note, &t.Files, &t.Bytes, &t.Parts,
			&first, &last, &t.GotParts, &t.GotFiles, &t.GotBytes); err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		t.ID = fmt.Sprintf("%x", id)
		t.From = nameOf(names, src)
		t.Folder = filepath.Join(root, filepath.FromSlash(t.Folder))
		t.First, t.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		t.Complete = t.GotParts == t.Parts
		out = append(out, t)
	}
	return out, rows.Err()
}

// ListOut returns the transfers n sent, newest first, with how many of
// their parts were delivered.
func ListOut(ctx context.Context, n *node.Node) ([]Out, error) {
	rows, err := n.DB().QueryContext(ctx, `SELECT t.id, t.dest, t.name, t.files, t.bytes, t.parts, t.created,
		count(b.bundle), count(CASE WHEN s.state = 'delivered' THEN 1 END)
		FROM transfers_out t LEFT JOIN transfer_bundles_out b ON b.transfer = t.id
		LEFT JOIN bundles s ON s.id = b.bundle
		GROUP BY t.id ORDER BY t.created DESC, t.id`)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer rows.Close()
	names := peerNames(ctx, n)
	var out []Out
	for rows.Next() {
		var t Out
		var id, dest []byte
		var created int64
		if err := rows.Scan(&id, &dest, &t.Name, &t.Files, &t.Bytes, &t.Parts, &created, &t.Queued, &t.Delivered); err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		t.ID = fmt.Sprintf("%x", id)
		t.To = nameOf(names, dest)
		t.Created = time.UnixMilli(created).UTC()
		out = append(out, t)
	}
	return out, rows.Err()
}

func peerNames(ctx context.Context, n *node.Node) map[bundle.NodeID]string {
	m := map[bundle.NodeID]string{}
	if ps, err := n.Peers(ctx); err == nil {
		for _, p := range ps {
			m[p.ID] = p.Name
		}
	}
	return m
}

func nameOf(names map[bundle.NodeID]string, id []byte) string {
	var nid bundle.NodeID
	copy(nid[:], id)
	if s, ok := names[nid]; ok {
		return s
	}
	return nid.Short()
}
