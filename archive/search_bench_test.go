package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/node"
)

// benchSite writes a site of pages HTML pages of about 1.3 KB of words
// and returns its size and its node.
func benchSite(b *testing.B, pages int) (*node.Node, int64) {
	n, err := node.Init(filepath.Join(b.TempDir(), "north"), "north", node.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	dir := filepath.Join(b.TempDir(), "site")
	rng := rand.New(rand.NewPCG(7, 8))
	words := strings.Fields("the river north archive ferry bundle community page link water seed grain field school clinic map road pump washer")
	var total int64
	for i := range pages {
		var sb strings.Builder
		fmt.Fprintf(&sb, "<html><head><title>Page %d</title><style>p{}</style></head><body><p>", i)
		for range 200 {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		sb.WriteString("</p><script>var x = 1;</script></body></html>\n")
		p := filepath.Join(dir, fmt.Sprintf("s%02d/p%05d.html", i%20, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(sb.Len())
	}
	if _, err := Add(context.Background(), n, dir, nil, Meta{Title: "site"}); err != nil {
		b.Fatal(err)
	}
	return n, total
}

// BenchmarkArchiveIndex indexes a 2,000-page site (text extraction and
// FTS5 inserts): go test -run X -bench ArchiveIndex ./archive
func BenchmarkArchiveIndex(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		n, size := benchSite(b, 2000)
		b.SetBytes(size)
		b.StartTimer()
		if k, err := Index(ctx, n); err != nil || k != 1 {
			b.Fatal(k, err)
		}
	}
}

// BenchmarkArchiveSearch searches the indexed 2,000-page site.
func BenchmarkArchiveSearch(b *testing.B) {
	ctx := context.Background()
	n, _ := benchSite(b, 2000)
	if _, err := Index(ctx, n); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		hits, err := Search(ctx, n, "pump wash", 50)
		if err != nil || len(hits) == 0 {
			b.Fatal(len(hits), err)
		}
	}
}
