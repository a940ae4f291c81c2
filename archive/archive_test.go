package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

func TestArchiveGearTableGolden(t *testing.T) {
	var b []byte
	for _, g := range gear {
		b = binary.BigEndian.AppendUint64(b, g)
	}
	got := fmt.Sprintf("%x", sha256.Sum256(b))
	const want = "ee5bfaf155321e0c2994c1f8031975bd23413002721a533f9e1244e1103bd160"
	if got != want {
		t.Fatalf("gear table changed: %s", got)
	}
	if s, l := ProfileText.masks(); s != 0xffff000000000000 || l != 0xfff0000000000000 {
		t.Fatalf("text masks %x %x", s, l)
	}
}

func chunkSizes(t *testing.T, data []byte, p Profile) []int {
	var sizes []int
	if err := chunkStream(bytes.NewReader(data), p, func(b []byte) error { sizes = append(sizes, len(b)); return nil }); err != nil {
		t.Fatal(err)
	}
	return sizes
}

func TestArchiveChunkerShiftResistant(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	a := chunkSizes(t, data, ProfileText)
	total := 0
	for _, s := range a {
		if s > ProfileText.Max || (s < ProfileText.Min && total+s != len(data)) {
			t.Fatalf("chunk of %d bytes", s)
		}
		total += s
	}
	if total != len(data) {
		t.Fatalf("chunks cover %d of %d bytes", total, len(data))
	}
	avg := len(data) / len(a)
	if avg < 8<<10 || avg > 24<<10 {
		t.Errorf("average chunk %d bytes, want about 16 KiB", avg)
	}
	// An insertion near the start changes only the chunks around it.
	b := append([]byte("inserted!"), data...)
	hashes := func(d []byte) map[[32]byte]bool {
		m := map[[32]byte]bool{}
		chunkStream(bytes.NewReader(d), ProfileText, func(c []byte) error { m[sha256.Sum256(c)] = true; return nil })
		return m
	}
	ha, hb := hashes(data), hashes(b)
	same := 0
	for h := range hb {
		if ha[h] {
			same++
		}
	}
	if same < len(ha)-3 {
		t.Errorf("after a 9-byte insert only %d of %d chunks are unchanged", same, len(ha))
	}
}

func newNode(t *testing.T, name string) *node.Node {
	t.Helper()
	n, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, s := range files {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// countChunkFiles counts the chunks n's store holds (each once).
func countChunkFiles(t *testing.T, n *node.Node) int {
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return stats.Chunks
}

func TestArchiveSmallFilesPackedAndDeduplicated(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, "north")
	src := t.TempDir()
	files := map[string]string{}
	for i := range 20000 {
		files[fmt.Sprintf("p%02d/%05d.html", i%50, i)] = fmt.Sprintf("<html><p>page %d of the mirror, %x</p></html>\n", i, sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
	}
	writeFiles(t, src, files)
	start := time.Now()
	rep, err := Add(ctx, n, src, nil, Meta{Title: "mirror"})
	t.Logf("add took %v", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	chunks := countChunkFiles(t, n)
	t.Logf("20,000 pages (%d bytes): %d chunk files", rep.Manifest.Size(), chunks)
	if chunks > 400 {
		t.Fatalf("20,000 tiny pages cost %d chunk files", chunks)
	}
	// A second item with the same content costs no new chunk.
	rep2, err := Add(ctx, n, src, nil, Meta{Title: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.NewChunks != 0 || countChunkFiles(t, n) != chunks {
		t.Fatalf("identical item stored %d new chunks", rep2.NewChunks)
	}
	// Every page rebuilds from the packed chunks (Get's writing is tested
	// end to end in cmd/ferry).
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(st, rep.Manifest); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveAddSkipsLinksAndRefusesUnsafeNames(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, "north")
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.html": "a", "d/b.html": "b"})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "passwd")); err != nil {
		t.Skip(err)
	}
	os.Symlink("/etc", filepath.Join(src, "etc"))
	rep, err := Add(ctx, n, src, nil, Meta{Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifest.Files) != 2 || len(rep.Skipped) != 2 {
		t.Fatalf("files %v skipped %v", rep.Manifest.Files, rep.Skipped)
	}
	for _, bad := range []string{"CON.html", "x:y", `a\b`} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{bad: "x"})
		if _, err := Add(ctx, n, dir, nil, Meta{Title: "t"}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := Add(ctx, n, src, nil, Meta{}); err == nil {
		t.Error("item without a title accepted")
	}
}

// sendHostile seals from src to dst a bundle with the given records.
func sendHostile(t *testing.T, src, dst *node.Node, recs func(w *bundle.Writer) error) (*node.IngestResult, error) {
	t.Helper()
	ctx := context.Background()
	id, _, err := src.SealRecords(ctx, dst.ID(), bundle.KindArchive, node.PriorityArchive, 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := src.OpenBundle(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := dst.Ingest(ctx, f)
	return &res, err
}

func pair(t *testing.T) (*node.Node, *node.Node) {
	ctx := context.Background()
	a, b := newNode(t, "north"), newNode(t, "river")
	for _, x := range [][2]*node.Node{{a, b}, {b, a}} {
		card, err := x[0].Card(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x[1].AddPeer(ctx, card, ""); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func TestArchiveHostileManifestsRefused(t *testing.T) {
	north, river := pair(t)
	key := north.Identity().Sign
	data := []byte("escape attempt")
	ref := chunkRef(data)
	good := &bundle.ArchiveManifest{Item: [16]byte{7}, Version: 1, Title: "x", Created: time.UnixMilli(1700000000000),
		Chunks: []bundle.ArchiveChunkRef{ref}, Files: []bundle.ArchiveFile{{Path: "aa/evil", Size: uint64(len(data)), Hash: sha256.Sum256(data)}}}
	if err := good.Sign(key); err != nil {
		t.Fatal(err)
	}
	body, _ := good.AppendBinary(nil)
	// Hostile variants, each re-signed so only the rule refuses them.
	resign := func(b []byte) []byte {
		sb := b[:len(b)-bundle.SignatureSize]
		return append(append([]byte(nil), sb...), ed25519Sign(key, sb)...)
	}
	escape := resign(bytes.Replace(body, []byte("aa/evil"), []byte("../evil"), 1))
	absolute := resign(bytes.Replace(body, []byte("aa/evil"), []byte("/a/evil"), 1))
	device := resign(bytes.Replace(body, []byte("aa/evil"), []byte("a/AUX.h"), 1))
	tampered := bytes.Replace(body, []byte("aa/evil"), []byte("aa/good"), 1)
	bomb := append([]byte(nil), body[:bytes.Index(body, ref.Hash[:])-1]...)
	bomb = append(bomb, 0xff, 0xff, 0x7f) // 2 million chunks declared, none there
	for name, m := range map[string][]byte{"escape": escape, "absolute": absolute, "device": device, "tampered": tampered, "bomb": bomb} {
		_, err := sendHostile(t, north, river, func(w *bundle.Writer) error {
			if err := w.WriteRecord(bundle.RecordArchiveChunk, data); err != nil {
				return err
			}
			return w.WriteRecord(bundle.RecordArchiveManifest, m)
		})
		var re *node.RefusedError
		if !errors.As(err, &re) {
			t.Errorf("%s: not refused: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	if items, _ := List(context.Background(), river); len(items) != 0 {
		t.Fatalf("hostile manifests stored: %v", items)
	}
	if _, err := os.Stat(filepath.Join(river.Dir(), "..", "evil")); err == nil {
		t.Fatal("a file was written outside")
	}
	// The good one is taken in and complete.
	if _, err := sendHostile(t, north, river, func(w *bundle.Writer) error {
		w.WriteRecord(bundle.RecordArchiveChunk, data)
		return w.WriteRecord(bundle.RecordArchiveManifest, body)
	}); err != nil {
		t.Fatal(err)
	}
	if items, _ := List(context.Background(), river); len(items) != 1 || !items[0].Complete {
		t.Fatalf("good manifest: %v", items)
	}
}

func TestArchiveDeltaSplitAndOutOfOrder(t *testing.T) {
	ctx := context.Background()
	north, river := pair(t)
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	writeFiles(t, src, map[string]string{"big.bin": string(big), "index.html": "<a href=big.bin>big</a>"})
	rep, err := Add(ctx, north, src, nil, Meta{Title: "big"})
	if err != nil {
		t.Fatal(err)
	}
	old := deltaContentBudget
	deltaContentBudget = 200 << 10
	defer func() { deltaContentBudget = old }()
	sent, err := Send(ctx, north, rep.Manifest.Item, river.ID())
	if err != nil {
		t.Fatal(err)
	}
	if sent.Bundles < 5 {
		t.Fatalf("a 1 MiB delta with a 200 KiB budget made %d bundles", sent.Bundles)
	}
	// The manifest's bundle (the last sealed) arrives first.
	first := true
	ingestQueued(t, north, river, true, func(int) {
		if first {
			if items, _ := List(ctx, river); len(items) != 1 || items[0].Complete {
				t.Fatalf("after the manifest alone: %+v", items)
			}
		}
		first = false
	})
	if items, _ := List(ctx, river); len(items) != 1 || !items[0].Complete {
		t.Fatalf("after every bundle: %+v", items)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := Get(ctx, river, rep.Manifest.Item, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "big.bin")); !bytes.Equal(b, big) {
		t.Fatal("big.bin differs")
	}
	// Nothing is left to send: river holds every chunk.
	again, err := Send(ctx, north, rep.Manifest.Item, river.ID())
	if err != nil {
		t.Fatal(err)
	}
	if again.Chunks != 0 || again.Bundles != 1 {
		t.Fatalf("second send: %+v", again)
	}
}
