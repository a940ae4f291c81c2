package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeMirror writes a scaled-down website mirror like the benchmark's
// (../shared/bench/peers/gen.sh site): HTML pages of 1.5–6 KB sharing a
// head, a nav and a footer, CSS/JS, and image-like random files of 1–8 KB.
func writeMirror(t *testing.T, dir string, files int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	vocab := make([]string, 800)
	for i := range vocab {
		b := make([]byte, 2+rng.IntN(9))
		for j := range b {
			b[j] = "etaoinshrdlcumwfgypbvkjxqz"[rng.IntN(26)*rng.IntN(26)/26]
		}
		vocab[i] = string(b)
	}
	nav := "<nav><ul>\n"
	for i := range 30 {
		nav += fmt.Sprintf("<li><a href=\"/section%d/index.html\">%s</a></li>\n", i, vocab[i*7])
	}
	nav += "</ul></nav>\n"
	write := func(p string, b []byte) {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		switch {
		case i%5 < 3: // pages
			var b strings.Builder
			fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>page %d</title>\n<link rel=\"stylesheet\" href=\"/css/site.css\"></head><body>\n%s<main>\n", i, nav)
			for size := 1500 + rng.IntN(4500); b.Len() < size; {
				b.WriteString("<p>")
				for range 20 + rng.IntN(60) {
					b.WriteString(vocab[int(float64(len(vocab))*rng.Float64()*rng.Float64())])
					b.WriteByte(' ')
				}
				b.WriteString("</p>\n")
			}
			b.WriteString("</main><footer>Community archive mirror.</footer></body></html>\n")
			write(fmt.Sprintf("section%d/page%05d.html", i%20, i), []byte(b.String()))
		case i%5 == 3 && i%50 == 3: // stylesheets and scripts
			write(fmt.Sprintf("css/style%04d.css", i), []byte(strings.Repeat(fmt.Sprintf(".c%d { margin: %dpx; }\n", i, i%17), 20+rng.IntN(200))))
		default: // images
			b := make([]byte, 1000+rng.IntN(7000))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			write(fmt.Sprintf("img/g%d/img%05d.jpg", i%20, i), b)
		}
	}
}

// mutateMirror changes 1 % of the files like gen.sh mutate: appends,
// overwrites and inserts in the middle, deletions, new files. It returns
// the bytes of the changed and new files, and of the new content alone
// (the edits and the new files).
func mutateMirror(t *testing.T, dir string) (changed, edits int64) {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	rng := rand.New(rand.NewPCG(99, 1))
	edit := func(n int, jpg bool) []byte {
		b := make([]byte, n)
		for i := range b {
			if jpg {
				b[i] = byte(rng.Uint32())
			} else {
				b[i] = "abcdefghijklmnopqrstuvwxyz0123456789+/"[rng.IntN(38)]
			}
		}
		return b
	}
	k := len(files) / 100
	for j, i := range rng.Perm(len(files))[:k] {
		p := files[i]
		b, _ := os.ReadFile(p)
		jpg := strings.HasSuffix(p, ".jpg")
		mid := len(b) / 2
		switch {
		case j < k*45/100: // append
			e := edit(200+rng.IntN(1800), jpg)
			b, edits = append(b, e...), edits+int64(len(e))
		case j < k*65/100: // overwrite in the middle
			e := edit(64+rng.IntN(400), jpg)
			edits += int64(copy(b[mid:], e))
		case j < k*85/100: // insert in the middle
			e := edit(64+rng.IntN(400), jpg)
			b, edits = append(b[:mid:mid], append(e, b[mid:]...)...), edits+int64(len(e))
		default:
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		changed += int64(len(b))
	}
	for i := range k / 10 {
		b := edit(1000+rng.IntN(5000), i%2 == 1)
		name := fmt.Sprintf("section%d/new%03d.html", i, i)
		if i%2 == 1 {
			name = fmt.Sprintf("img/g%d/new%03d.jpg", i, i)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		changed += int64(len(b))
		edits += int64(len(b))
	}
	return changed, edits
}

// TestArchivePatchFromByStick: a 2,000-file mirror goes north → stick →
// river, byte-identical; after a 1 % update (edits in the middle,
// appends, additions, deletions) the second sync carries patches against
// the version river proved it holds, far smaller than the changed files,
// and river's new version is byte-identical to north's tree.
func TestArchivePatchFromByStick(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "ana")
	river := newCommunity(t, root, "river", "rui")
	introduce(t, north, river)
	site := filepath.Join(root, "site")
	writeMirror(t, site, 2000)
	tree := dirSize(t, site)
	stick := filepath.Join(root, "stick")
	if err := os.Mkdir(stick, 0o755); err != nil {
		t.Fatal(err)
	}

	mustFerry(t, "archive", "add", "--data", north.data, site, "--title", "Mirror")
	items := listArchive(t, north)
	if len(items) != 1 || items[0].Files != 2000 {
		t.Fatalf("north: %+v", items)
	}
	id := items[0].ID
	mustFerry(t, "archive", "send", "--data", north.data, id, "--to", "river")
	usbSync(t, north, stick)
	first := dirSize(t, stick)
	usbSync(t, river, stick) // imports, and leaves river's receipts on the stick
	got := filepath.Join(root, "got1")
	mustFerry(t, "archive", "get", "--data", river.data, id, "--out", got)
	sameTree(t, site, got)
	usbSync(t, north, stick) // north learns river holds version 1

	changed, edits := mutateMirror(t, site)
	mustFerry(t, "archive", "add", "--data", north.data, "--item", id, site)
	var rep struct {
		Bundles, Chunks, Rebuilt, Patches, Literals int
		BundleBytes, ChunkBytes, PatchBytes         int64
		BaseVersion                                 uint64
	}
	if err := json.Unmarshal([]byte(mustFerry(t, "archive", "send", "--data", north.data, id, "--to", "river", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	before := dirSize(t, stick)
	usbSync(t, north, stick)
	moved := dirSize(t, stick) - before
	t.Logf("tree %d bytes in 2000 files; first sync %d bytes on the stick; 1 %% update: %d bytes of changed and new files, %d of new content, "+
		"%d bytes onto the stick (%.3f %% of the tree), delta %+v", tree, first, changed, edits, moved, 100*float64(moved)/float64(tree), rep)
	if rep.BaseVersion != 1 || rep.Patches < 15 || rep.Literals != 2 {
		t.Fatalf("patch-from was not used: %+v", rep)
	}
	// Patches against version 1 carry the edits, not the changed files
	// (without patch-from, each edited page dirties a 4–64 KiB chunk).
	if moved <= 0 || moved*3 > changed || moved > edits*3/2+8<<10 || rep.Chunks != 0 {
		t.Errorf("the update moved %d bytes (%d raw chunks) for %d bytes of changed files, %d of new content", moved, rep.Chunks, changed, edits)
	}
	usbSync(t, river, stick)
	if it := listArchive(t, river); len(it) != 1 || it[0].Version != 2 || !it[0].Complete {
		t.Fatalf("river after the update: %+v", it)
	}
	got2 := filepath.Join(root, "got2")
	mustFerry(t, "archive", "get", "--data", river.data, id, "--out", got2)
	sameTree(t, site, got2)
}
