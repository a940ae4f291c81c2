package archive

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"ferry/bundle"
	"ferry/node"
)

// Bounds of the full-text index: the text kept of one page, and the
// pages read in full (larger ones are indexed by their start).
const (
	maxPageText  = 256 << 10
	maxPageBytes = 4 << 20
)

// indexMu serializes indexing within a process; the index tables make a
// second process's run a no-op for what the first one did.
var indexMu sync.Mutex

// Index brings the full-text index up to date: the newest complete
// version of every item is indexed (title, description, tags and the
// text of its HTML and text pages) and older versions dropped. It
// returns the number of snapshots indexed.
func Index(ctx context.Context, n *node.Node) (int, error) {
	indexMu.Lock()
	defer indexMu.Unlock()
	if err := recheck(ctx, n); err != nil {
		return 0, err
	}
	rows, err := n.DB().QueryContext(ctx, `SELECT body FROM archive_manifests a WHERE complete = 1
		AND NOT EXISTS (SELECT 1 FROM archive_manifests b WHERE b.item = a.item AND b.complete = 1 AND
			(b.version > a.version OR (b.version = a.version AND (b.created > a.created OR (b.created = a.created AND b.origin < a.origin)))))
		AND NOT EXISTS (SELECT 1 FROM archive_indexed i WHERE i.item = a.item AND i.version = a.version AND i.origin = a.origin)`)
	if err != nil {
		return 0, err
	}
	var todo [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return 0, err
		}
		todo = append(todo, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return 0, err
	}
	for i, body := range todo {
		m, err := bundle.ParseArchiveManifest(body)
		if err != nil {
			return i, err
		}
		if err := indexOne(ctx, n, st, m); err != nil {
			return i, fmt.Errorf("archive: index %x: %w", m.Item, err)
		}
	}
	return len(todo), nil
}

type pageText struct {
	path, text string
}

func indexOne(ctx context.Context, n *node.Node, st *Store, m *bundle.ArchiveManifest) error {
	var pages []pageText
	err := rebuild(st, m, func(f *bundle.ArchiveFile) (io.WriteCloser, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !IsPage(f.Path) {
			return nopCloser{io.Discard}, nil
		}
		return &pageCollector{path: f.Path, html: !strings.HasSuffix(strings.ToLower(f.Path), ".txt") &&
			!strings.HasSuffix(strings.ToLower(f.Path), ".md"), out: &pages}, nil
	})
	if err != nil {
		return err
	}
	return n.Update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM archive_text WHERE item = ?`, hex.EncodeToString(m.Item[:])); err != nil {
			return err
		}
		id := hex.EncodeToString(m.Item[:])
		tags := strings.Join(m.Tags, " ")
		if _, err := tx.ExecContext(ctx, `INSERT INTO archive_text (title, description, path, body, item, version) VALUES (?, ?, '', ?, ?, ?)`,
			m.Title, m.Description, tags+" "+m.Lang+" "+m.Source, id, m.Version); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO archive_text (title, description, path, body, item, version) VALUES (?, '', ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range pages {
			title := ""
			if t, ok := strings.CutPrefix(p.text, "\x00"); ok {
				title, p.text, _ = strings.Cut(t, "\x00")
			}
			if _, err := stmt.ExecContext(ctx, title, p.path, p.text, id, m.Version); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO archive_indexed (item, version, origin) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			m.Item[:], m.Version, m.Origin[:])
		return err
	})
}

// pageCollector keeps the start of a page and turns it into text on
// Close.
type pageCollector struct {
	path string
	html bool
	buf  bytes.Buffer
	out  *[]pageText
}

func (c *pageCollector) Write(p []byte) (int, error) {
	if room := maxPageBytes - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *pageCollector) Close() error {
	text := c.buf.String()
	if c.html {
		title, body := HTMLText(c.buf.Bytes())
		text = "\x00" + title + "\x00" + body
	}
	if len(text) > maxPageText {
		text = strings.ToValidUTF8(text[:maxPageText], "")
	}
	*c.out = append(*c.out, pageText{path: c.path, text: text})
	return nil
}

// HTMLText extracts the title and the visible text of an HTML page: tags
// are dropped, the contents of script, style, template and noscript
// elements and comments skipped, character references decoded and white
// space collapsed. It is a scanner for indexing, not a full HTML parser:
// it never fails, whatever the input.
func HTMLText(page []byte) (title, text string) {
	var b, t strings.Builder
	s := page
	inTitle := false
	for len(s) > 0 {
		lt := bytes.IndexByte(s, '<')
		if lt < 0 {
			lt = len(s)
		}
		chunk := html.UnescapeString(string(s[:lt]))
		if inTitle {
			t.WriteString(chunk)
		} else {
			b.WriteString(chunk)
		}
		s = s[lt:]
		if len(s) == 0 {
			break
		}
		if bytes.HasPrefix(s, []byte("<!--")) {
			end := bytes.Index(s[4:], []byte("-->"))
			if end < 0 {
				break
			}
			s = s[4+end+3:]
			continue
		}
		gt := bytes.IndexByte(s, '>')
		if gt < 0 {
			break
		}
		name := tagName(s[1:gt])
		s = s[gt+1:]
		switch name {
		case "script", "style", "template", "noscript", "textarea":
			end := indexFold(s, "</"+name)
			if end < 0 {
				s = nil
				continue
			}
			s = s[end:]
		case "title":
			inTitle = true
		case "/title":
			inTitle = false
		}
		b.WriteByte(' ')
	}
	return collapse(t.String()), collapse(b.String())
}

// tagName returns the lowercase name of a tag ("p", "/p", "!doctype").
func tagName(tag []byte) string {
	end := 0
	for end < len(tag) && end < 16 {
		c := tag[end]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '/' && end > 0 || c == '>' {
			break
		}
		end++
	}
	return strings.ToLower(string(tag[:end]))
}

func indexFold(s []byte, sub string) int {
	return bytes.Index(bytes.ToLower(s), []byte(sub))
}

func collapse(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	return strings.Join(strings.Fields(s), " ")
}

// Hit is a search result: an item, and the page of it that matched (""
// for the item's own title and description).
type Hit struct {
	Item    string `json:"item"`
	Title   string `json:"title"`
	Path    string `json:"path,omitempty"`
	Snippet string `json:"snippet"`
}

// Search searches the titles, descriptions, tags and page text of the
// archive (call [Index] first), best matches first. Snippets mark the
// matched words with \x02 and \x03.
func Search(ctx context.Context, n *node.Node, query string, limit int) ([]Hit, error) {
	q := node.FTSQuery(query)
	if q == "" {
		return nil, nil
	}
	rows, err := n.DB().QueryContext(ctx, `SELECT t.item, t.path, COALESCE(NULLIF(t.title, ''), ''),
		snippet(archive_text, -1, char(2), char(3), '…', 16) FROM archive_text t
		WHERE archive_text MATCH ? ORDER BY bm25(archive_text, 10.0, 5.0, 2.0, 1.0) LIMIT ?`, q, limit)
	if err != nil {
		return nil, fmt.Errorf("archive: search: %w", err)
	}
	defer rows.Close()
	var out []Hit
	for rows.Next() {
		var h Hit
		if err := rows.Scan(&h.Item, &h.Path, &h.Title, &h.Snippet); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
