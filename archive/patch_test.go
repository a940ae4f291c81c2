package archive

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ferry/bundle"
	"ferry/node"
)

// carry exports every bundle from one node to the other and ingests it.
func carry(t *testing.T, from, to *node.Node) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := from.Export(ctx, to.ID(), dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = to.Ingest(ctx, f)
		f.Close()
		if err != nil {
			t.Fatalf("ingest %s: %v", e.Name(), err)
		}
	}
}

// writeTestSite writes pages of text, small binaries and two large files.
func writeTestSite(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	words := strings.Fields("river north archive ferry bundle community page link water seed grain field school clinic map road the of and")
	files := map[string]string{}
	for i := range 200 {
		var b strings.Builder
		fmt.Fprintf(&b, "<html><head><title>Page %d</title></head><body>\n", i)
		for b.Len() < 2000+rng.IntN(18000) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		files[fmt.Sprintf("s%d/page%03d.html", i%7, i)] = b.String() + "</body></html>\n"
	}
	rnd := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	for i := range 30 {
		files[fmt.Sprintf("img/i%02d.jpg", i)] = rnd(1000 + rng.IntN(60000))
	}
	files["media/a.bin"] = rnd(100 << 10)
	files["media/b.bin"] = rnd(1 << 20)
	writeFiles(t, dir, files)
}

// editFile rewrites the file at p with f applied to its bytes.
func editFile(t *testing.T, p string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func insertMid(ins string) func([]byte) []byte {
	return func(b []byte) []byte {
		mid := len(b) / 2
		return append(b[:mid:mid], append([]byte(ins), b[mid:]...)...)
	}
}

// syncedSite makes north and river, a test site added on north as
// version 1 of an item, sent and carried to river.
func syncedSite(t *testing.T, seed uint64) (north, river *node.Node, src string, v1 *AddReport) {
	t.Helper()
	north, river = pair(t)
	src = t.TempDir()
	writeTestSite(t, src, rand.New(rand.NewPCG(seed, seed)))
	v1, err := Add(context.Background(), north, src, nil, Meta{Title: "site"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Send(context.Background(), north, v1.Manifest.Item, river.ID()); err != nil {
		t.Fatal(err)
	}
	carry(t, north, river)
	return north, river, src, v1
}

// ingestQueued ingests at to every bundle from queued for it, in sealing
// order or, newestFirst, the last sealed first, calling after with each
// bundle's rank in sealing order.
func ingestQueued(t *testing.T, from, to *node.Node, newestFirst bool, after func(i int)) {
	t.Helper()
	ctx := context.Background()
	out, err := from.Outgoing(ctx, to.ID())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b node.BundleInfo) int { return cmp.Compare(a.Seq, b.Seq) })
	for k := range out {
		i := k
		if newestFirst {
			i = len(out) - 1 - k
		}
		f, err := from.OpenBundle(out[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = to.Ingest(ctx, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		after(i)
	}
}

func TestArchivePatchFrom(t *testing.T) {
	ctx := context.Background()
	north, river, src, v1 := syncedSite(t, 8)
	item := v1.Manifest.Item

	// Change the tree; before river's receipts come back, north has no
	// proof that river holds version 1: no patch-from.
	changed := 0
	for _, p := range []string{"s1/page001.html", "s2/page002.html", "s3/page010.html"} {
		editFile(t, filepath.Join(src, p), func(b []byte) []byte { return append(b, "<p>appended paragraph</p>\n"...) })
		changed++
	}
	for _, p := range []string{"s4/page011.html", "s5/page012.html", "s6/page013.html", "img/i03.jpg", "media/b.bin"} {
		editFile(t, filepath.Join(src, p), insertMid("<p>an edit in the middle of the file</p>"))
		changed++
	}
	editFile(t, filepath.Join(src, "img/i04.jpg"), func(b []byte) []byte { copy(b[len(b)/2:], "overwritten"); return b })
	changed++
	os.Remove(filepath.Join(src, "s0/page014.html"))
	os.Remove(filepath.Join(src, "img/i05.jpg"))
	writeFiles(t, src, map[string]string{"s0/new.html": "<html><body>a new page about the river</body></html>\n", "img/new.jpg": "\x89PNG new image bytes"})
	var changedBytes int64
	v2, err := Add(ctx, north, src, &item, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range v2.Manifest.Files {
		if i := pathIndex(v1.Manifest, f.Path); i < 0 || v1.Manifest.Files[i].Hash != f.Hash {
			changedBytes += int64(f.Size)
		}
	}
	_, proven, err := peerHolds(ctx, north, river.ID())
	if err != nil {
		t.Fatal(err)
	}
	if b, _, err := provenBase(ctx, north, v2.Manifest, proven); err != nil || b != nil {
		t.Fatalf("a base without proof: %v %v", b, err)
	}
	carry(t, river, north) // river's receipts: now north knows
	rep, err := Send(ctx, north, item, river.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("update: %+v; changed and new files hold %d bytes", rep, changedBytes)
	if rep.BaseVersion != 1 || rep.Patches < changed || rep.Literals != 2 || rep.Chunks != 0 || rep.Rebuilt == 0 {
		t.Fatalf("patch-from not used as expected: %+v", rep)
	}
	if rep.BundleBytes*10 > changedBytes {
		t.Errorf("the update moved %d bytes for %d bytes of changed files", rep.BundleBytes, changedBytes)
	}
	carry(t, north, river)
	items, err := List(ctx, river)
	if err != nil || len(items) != 1 || items[0].Version != 2 || !items[0].Complete {
		t.Fatalf("river: %+v %v", items, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Get(ctx, river, item, out); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, out)
}

func pathIndex(m *bundle.ArchiveManifest, p string) int {
	for i, f := range m.Files {
		if f.Path == p {
			return i
		}
	}
	return -1
}

// sameFiles fails unless the trees a and b hold the same files.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	read := func(root string) map[string][]byte {
		m := map[string][]byte{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				rel, _ := filepath.Rel(root, p)
				m[rel], _ = os.ReadFile(p)
			}
			return nil
		})
		return m
	}
	ma, mb := read(a), read(b)
	if len(ma) != len(mb) {
		t.Fatalf("%d files against %d", len(ma), len(mb))
	}
	for p, x := range ma {
		if !bytes.Equal(x, mb[p]) {
			t.Fatalf("%s differs", p)
		}
	}
}

// TestArchiveHostileDeltasRefused: a delta whose patch does not rebuild
// its file, whose base is not held, or whose manifest is forged, refuses
// its bundle; nothing of it is stored.
func TestArchiveHostileDeltasRefused(t *testing.T) {
	ctx := context.Background()
	north, river, src, v1 := syncedSite(t, 1)
	item := v1.Manifest.Item
	editFile(t, filepath.Join(src, "s1/page001.html"), insertMid("<p>edit</p>"))
	writeFiles(t, src, map[string]string{"s0/new.html": "<html>new</html>"})
	v2, err := Add(ctx, north, src, &item, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := OpenStore(storeDir(north.Dir()))
	body1, _ := v1.Manifest.AppendBinary(nil)
	body2, _ := v2.Manifest.AppendBinary(nil)
	have := map[[32]byte]bool{}
	for _, c := range v1.Manifest.Chunks {
		have[c.Hash] = true
	}
	var need []bundle.ArchiveChunkRef
	for _, c := range v2.Manifest.Chunks {
		if !have[c.Hash] {
			need, have[c.Hash] = append(need, c), true
		}
	}
	plan, err := planDelta(st, v2.Manifest, v1.Manifest, body1, body2, need)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.raw) != 0 || plan.patches != 1 || plan.literal != 1 {
		t.Fatalf("plan: raw %d, patches %d, literals %d", len(plan.raw), plan.patches, plan.literal)
	}
	good, _ := bundle.ParseArchiveDelta(plan.record)
	tamper := func(f func(d *bundle.ArchiveDelta)) []byte {
		d, _ := bundle.ParseArchiveDelta(plan.record)
		for i := range d.Files {
			d.Files[i].Data = bytes.Clone(d.Files[i].Data)
		}
		f(d)
		b, err := d.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	forged := v2.Manifest
	forged.Title = "forged"
	forgedBody, _ := forged.AppendBinary(nil) // signature no longer matches
	zf, _ := encodeAgainst(body1, forgedBody)
	// In order, and the literal first: a refused delta may leave behind
	// chunks it rebuilt and checked (content-addressed, unreferenced), and
	// a chunk the store has is not rebuilt again, so a later case whose
	// only fault is in that chunk's literal would not reach the check.
	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"literal does not rebuild", tamper(func(d *bundle.ArchiveDelta) {
			for i := range d.Files {
				if d.Files[i].Kind == bundle.ArchivePatchLiteral {
					d.Files[i].Data[0] ^= 1
				}
			}
		})},
		{"patch against another base file", tamper(func(d *bundle.ArchiveDelta) {
			for i := range d.Files {
				if d.Files[i].Kind == bundle.ArchivePatchZstd {
					d.Files[i].Base++
				}
			}
		})},
		{"file index out of range", tamper(func(d *bundle.ArchiveDelta) { d.Files[len(d.Files)-1].File = 1 << 19 })},
		{"base not held", tamper(func(d *bundle.ArchiveDelta) { d.Base[0] ^= 1 })},
		{"not zstd", tamper(func(d *bundle.ArchiveDelta) { d.Manifest = []byte("garbage") })},
		{"forged manifest", tamper(func(d *bundle.ArchiveDelta) { d.Manifest = zf })},
	} {
		name, rec := tc.name, tc.rec
		_, err := sendHostile(t, north, river, func(w *bundle.Writer) error { return w.WriteRecord(bundle.RecordArchiveDelta, rec) })
		var re *node.RefusedError
		if !errors.As(err, &re) {
			t.Errorf("%s: not refused: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	if items, _ := List(ctx, river); len(items) != 1 || items[0].Version != 1 {
		t.Fatalf("a hostile delta was stored: %+v", items)
	}
	// The true delta is taken in and rebuilds version 2.
	if _, err := sendHostile(t, north, river, func(w *bundle.Writer) error {
		b, _ := good.AppendBinary(nil)
		return w.WriteRecord(bundle.RecordArchiveDelta, b)
	}); err != nil {
		t.Fatal(err)
	}
	if items, _ := List(ctx, river); len(items) != 1 || items[0].Version != 2 || !items[0].Complete {
		t.Fatalf("good delta: %+v", items)
	}
}

func TestArchivePatchCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for _, n := range []int{20, 1200, 70 << 10, 3 << 20} {
		dict := make([]byte, n)
		for i := range dict {
			dict[i] = "abcdefgh ijklmnop\n"[rng.IntN(18)]
		}
		src := insertMid("an edit in the middle")(bytes.Clone(dict))
		z, err := encodeAgainst(dict, src)
		if err != nil {
			t.Fatal(err)
		}
		if len(z) > 80+n/8192 {
			t.Errorf("a %d-byte insert into %d bytes: %d-byte patch", 21, n, len(z))
		}
		got, err := decodeAgainst(dict, z, len(src))
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: round trip: %v", n, err)
		}
		if _, err := decodeAgainst(dict, z, len(src)-1); err == nil {
			t.Errorf("%d bytes: output over the limit accepted", n)
		}
	}
}

// TestArchivePatchFromWithRawChunks: when the delta's patch budget is
// spent, the other lacking chunks travel raw next to the delta; the delta
// arriving before them leaves the snapshot incomplete until they come.
func TestArchivePatchFromWithRawChunks(t *testing.T) {
	ctx := context.Background()
	north, river, src, v1 := syncedSite(t, 4)
	item := v1.Manifest.Item
	carry(t, river, north)
	for i := range 40 {
		editFile(t, filepath.Join(src, fmt.Sprintf("s%d/page%03d.html", i%7, i)), insertMid(fmt.Sprintf("<p>edit %d</p>", i)))
	}
	if _, err := Add(ctx, north, src, &item, Meta{}); err != nil {
		t.Fatal(err)
	}
	oldPatch, oldContent := deltaPatchBudget, deltaContentBudget
	deltaPatchBudget, deltaContentBudget = 600, 40<<10
	defer func() { deltaPatchBudget, deltaContentBudget = oldPatch, oldContent }()
	rep, err := Send(ctx, north, item, river.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rep.BaseVersion != 1 || rep.Chunks == 0 || rep.Rebuilt == 0 || rep.Bundles < 2 {
		t.Fatalf("want raw chunks and rebuilt ones: %+v", rep)
	}
	// The delta (sealed last) first.
	ingestQueued(t, north, river, true, func(i int) {
		items, _ := List(ctx, river)
		if want := i == 0; len(items) != 1 || items[0].Version != 2 || items[0].Complete != want {
			t.Fatalf("after bundle %d: %+v", i, items)
		}
	})
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := Get(ctx, river, item, dst); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, dst)
}
