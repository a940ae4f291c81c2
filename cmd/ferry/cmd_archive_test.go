package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSite writes a deterministic website-like tree: many small pages
// of text, a few larger assets.
func writeSite(t *testing.T, dir string, pages int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the river north archive ferry bundle community page link water seed grain field school clinic map road")
	for i := range pages {
		var b strings.Builder
		fmt.Fprintf(&b, "<html><head><title>Page %d</title></head><body>\n", i)
		for range 20 + rng.IntN(200) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString("\n</body></html>\n")
		p := filepath.Join(dir, fmt.Sprintf("section%02d/page%04d.html", i%20, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		big := make([]byte, 300<<10)
		for j := range big {
			big[j] = byte(rng.Uint32())
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("asset%d.bin", i)), big, 0o644)
	}
}

// mutateSite changes about 1 % of the files: edits in the middle,
// appends, additions and deletions.
func mutateSite(t *testing.T, dir string) {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	for i, p := range files {
		if i%100 != 7 {
			continue
		}
		b, _ := os.ReadFile(p)
		switch (i / 100) % 4 {
		case 0: // edit in the middle
			mid := len(b) / 2
			b = append(b[:mid:mid], append([]byte("<p>an edit in the middle</p>"), b[mid:]...)...)
			os.WriteFile(p, b, 0o644)
		case 1: // append
			os.WriteFile(p, append(b, "<footer>appended</footer>\n"...), 0o644)
		case 2:
			os.Remove(p)
		case 3:
			os.WriteFile(p+".new.html", []byte("<html>a new page</html>\n"), 0o644)
		}
	}
}

// sameTree fails unless a and b hold the same regular files with the same
// bytes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	ma, mb := treeFiles(t, a), treeFiles(t, b)
	if len(ma) != len(mb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(ma), b, len(mb))
	}
	for p, x := range ma {
		if y, ok := mb[p]; !ok || !bytes.Equal(x, y) {
			t.Fatalf("%s differs", p)
		}
	}
}

// treeFiles reads the regular files under root, by slash-separated path.
func treeFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			m[filepath.ToSlash(rel)], _ = os.ReadFile(p)
		}
		return nil
	})
	return m
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			n += fi.Size()
		}
		return nil
	})
	return n
}

type archiveItem struct {
	ID       string `json:"id"`
	Version  uint64 `json:"version"`
	Title    string `json:"title"`
	Files    int    `json:"files"`
	Size     int64  `json:"size"`
	Chunks   int    `json:"chunks"`
	Complete bool   `json:"complete"`
}

func listArchive(t *testing.T, c community) []archiveItem {
	t.Helper()
	var items []archiveItem
	if err := json.Unmarshal([]byte(mustFerry(t, "archive", "list", "--data", c.data, "--json")), &items); err != nil {
		t.Fatal(err)
	}
	return items
}

func TestArchiveAddGetSyncDelta(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "ana")
	river := newCommunity(t, root, "river", "rui")
	introduce(t, north, river)
	site := filepath.Join(root, "site")
	writeSite(t, site, 2000)
	tree := dirSize(t, site)

	mustFerry(t, "archive", "add", "--data", north.data, site, "--title", "Village site", "--tags", "web,health", "--lang", "en", "--source", "https://example.org/")
	items := listArchive(t, north)
	if len(items) != 1 || items[0].Files != 2003 || items[0].Size != tree || !items[0].Complete {
		t.Fatalf("list: %+v", items)
	}
	// Small files are packed: far fewer chunks than files.
	if items[0].Chunks > items[0].Files/4 {
		t.Errorf("%d chunks for %d files: small files are not packed", items[0].Chunks, items[0].Files)
	}
	id := items[0].ID

	// A plain copy on the same node is byte-identical.
	out := filepath.Join(root, "out-north")
	mustFerry(t, "archive", "get", "--data", north.data, id[:8], "--out", out)
	sameTree(t, site, out)
	if r := ferry(t, "archive", "get", "--data", north.data, id, "--out", out); r.code == 0 {
		t.Fatal("get into a non-empty folder succeeded")
	}

	// First sync by stick: everything travels.
	mustFerry(t, "archive", "send", "--data", north.data, id, "--to", "river")
	stick1 := filepath.Join(root, "stick1")
	mustFerry(t, "export", "--data", north.data, "--to", "river", "--out", stick1)
	mustFerry(t, "import", "--data", river.data, stick1)
	got := filepath.Join(root, "out-river")
	mustFerry(t, "archive", "get", "--data", river.data, id, "--out", got)
	sameTree(t, site, got)
	if it := listArchive(t, river); len(it) != 1 || !it[0].Complete || it[0].Version != 1 {
		t.Fatalf("river list: %+v", it)
	}
	// River's receipt goes back to north.
	back := filepath.Join(root, "back")
	mustFerry(t, "export", "--data", river.data, "--to", "north", "--out", back)
	mustFerry(t, "import", "--data", north.data, back)

	// A 1 % update: only the new chunks travel.
	mutateSite(t, site)
	mustFerry(t, "archive", "add", "--data", north.data, "--item", id, site)
	var rep struct{ Bundles, Chunks, ChunkBytes, BundleBytes, Held int64 }
	if err := json.Unmarshal([]byte(mustFerry(t, "archive", "send", "--data", north.data, id, "--to", "river", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	stick2 := filepath.Join(root, "stick2")
	mustFerry(t, "export", "--data", north.data, "--to", "river", "--out", stick2)
	moved := dirSize(t, stick2)
	first := dirSize(t, stick1)
	t.Logf("tree %d bytes, first sync %d bytes on the stick; 1 %% update: %d chunks (%d raw bytes), %d bytes on the stick (%.2f %% of the tree), %d chunks held",
		tree, first, rep.Chunks, rep.ChunkBytes, moved, 100*float64(moved)/float64(tree), rep.Held)
	// On this small tree (1.2 KB pages) one 16 KiB chunk changes per edited
	// page; the bound is loose, the figure is in the log.
	if moved*8 > first || rep.ChunkBytes*4 > tree {
		t.Errorf("the 1 %% update moved %d bytes (%d raw chunk bytes); the first sync moved %d of a %d-byte tree", moved, rep.ChunkBytes, first, tree)
	}
	mustFerry(t, "import", "--data", river.data, stick2)
	got2 := filepath.Join(root, "out-river-2")
	mustFerry(t, "archive", "get", "--data", river.data, id, "--out", got2)
	sameTree(t, site, got2)
	if it := listArchive(t, river); len(it) != 1 || it[0].Version != 2 || !it[0].Complete {
		t.Fatalf("river list after update: %+v", it)
	}
}

func TestArchiveUsage(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "ana")
	for _, args := range [][]string{
		{"archive"},
		{"archive", "frob"},
		{"archive", "add", "--data", north.data, root},
		{"archive", "get", "--data", north.data, "abcd"},
	} {
		if r := ferry(t, args...); r.code == 0 {
			t.Errorf("ferry %v succeeded", args)
		}
	}
	if it := listArchive(t, north); len(it) != 0 {
		t.Fatalf("empty archive lists %v", it)
	}
}
