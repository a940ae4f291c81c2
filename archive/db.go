package archive

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// ErrNoItem means no item matches the given ID.
var ErrNoItem = errors.New("archive: no such item")

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// saveManifest stores a signed manifest; storing it twice is harmless.
func saveManifest(ctx context.Context, q execer, m *bundle.ArchiveManifest, complete bool, now time.Time) error {
	body, err := m.AppendBinary(nil)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO archive_manifests
		(item, version, origin, title, created, size, files, complete, body, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (item, version, origin) DO UPDATE SET complete = max(complete, excluded.complete)`,
		m.Item[:], m.Version, m.Origin[:], m.Title, m.Created.UnixMilli(), m.Size(), len(m.Files), complete, body, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("archive: store manifest: %w", err)
	}
	return nil
}

// Latest returns the newest version of item that this node holds.
func Latest(ctx context.Context, n *node.Node, item [16]byte) (*bundle.ArchiveManifest, error) {
	var body []byte
	err := n.DB().QueryRowContext(ctx, `SELECT body FROM archive_manifests WHERE item = ?
		ORDER BY version DESC, created DESC, origin LIMIT 1`, item[:]).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w %x", ErrNoItem, item)
	}
	if err != nil {
		return nil, err
	}
	return bundle.ParseArchiveManifest(body)
}

// ResolveItem finds the item whose hex ID starts with s (at least 4
// digits).
func ResolveItem(ctx context.Context, n *node.Node, s string) ([16]byte, error) {
	var item [16]byte
	s = strings.ToLower(strings.TrimSpace(s))
	if _, err := hex.DecodeString(s[:len(s)&^1]); err != nil || len(s) < 4 || len(s) > 32 {
		return item, fmt.Errorf("%w %q (want 4 to 32 hex digits of its ID)", ErrNoItem, s)
	}
	rows, err := n.DB().QueryContext(ctx, `SELECT DISTINCT item FROM archive_manifests WHERE lower(hex(item)) LIKE ? || '%'`, s)
	if err != nil {
		return item, err
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return item, err
		}
		copy(item[:], b)
		found++
	}
	if err := rows.Err(); err != nil {
		return item, err
	}
	switch found {
	case 0:
		return item, fmt.Errorf("%w %q", ErrNoItem, s)
	case 1:
		return item, nil
	}
	return item, fmt.Errorf("archive: %q names %d items: give more digits", s, found)
}

// Item summarizes the newest version of an archive item.
type Item struct {
	ID          string    `json:"id"`
	Version     uint64    `json:"version"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Tags        []string  `json:"tags,omitempty"`
	Lang        string    `json:"lang,omitempty"`
	Source      string    `json:"source,omitempty"`
	Origin      string    `json:"origin"`
	Saved       time.Time `json:"saved"`
	Files       int       `json:"files"`
	Size        uint64    `json:"size"`
	Chunks      int       `json:"chunks"`
	Complete    bool      `json:"complete"`
}

// List returns the newest version of every item, newest first. A
// snapshot that arrived before some of its chunks (its bundles came out
// of order) is checked again and marked complete once they are all here.
func List(ctx context.Context, n *node.Node) ([]Item, error) {
	if err := recheck(ctx, n); err != nil {
		return nil, err
	}
	rows, err := n.DB().QueryContext(ctx, `SELECT body, complete FROM archive_manifests a
		WHERE NOT EXISTS (SELECT 1 FROM archive_manifests b WHERE b.item = a.item AND
			(b.version > a.version OR (b.version = a.version AND (b.created > a.created OR (b.created = a.created AND b.origin < a.origin)))))
		ORDER BY created DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var body []byte
		var complete bool
		if err := rows.Scan(&body, &complete); err != nil {
			return nil, err
		}
		m, err := bundle.ParseArchiveManifest(body)
		if err != nil {
			return nil, err
		}
		out = append(out, Item{ID: hex.EncodeToString(m.Item[:]), Version: m.Version, Title: m.Title,
			Description: m.Description, Tags: m.Tags, Lang: m.Lang, Source: m.Source, Origin: m.Origin.String(),
			Saved: m.Created, Files: len(m.Files), Size: m.Size(), Chunks: len(m.Chunks), Complete: complete})
	}
	return out, rows.Err()
}

// recheck marks complete the incomplete snapshots whose chunks are all
// in the store now and whose files all verify.
func recheck(ctx context.Context, n *node.Node) error {
	rows, err := n.DB().QueryContext(ctx, `SELECT body FROM archive_manifests WHERE complete = 0`)
	if err != nil {
		return err
	}
	var done []*bundle.ArchiveManifest
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		rows.Close()
		return err
	}
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			rows.Close()
			return err
		}
		m, err := bundle.ParseArchiveManifest(body)
		if err == nil && verify(st, m) == nil {
			done = append(done, m)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range done {
		if _, err := n.DB().ExecContext(ctx, `UPDATE archive_manifests SET complete = 1 WHERE item = ? AND version = ? AND origin = ?`,
			m.Item[:], m.Version, m.Origin[:]); err != nil {
			return fmt.Errorf("archive: mark complete: %w", err)
		}
	}
	return nil
}
