package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
)

func TestArchiveRecordConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"RecordArchiveChunk", uint64(bundle.RecordArchiveChunk), 0x10},
		{"RecordArchiveManifest", uint64(bundle.RecordArchiveManifest), 0x11},
		{"ArchiveModeFile", uint64(bundle.ArchiveModeFile), 0},
		{"ArchiveModeExec", uint64(bundle.ArchiveModeExec), 1},
		{"MaxArchiveFiles", bundle.MaxArchiveFiles, 1 << 20},
		{"MaxArchiveChunks", bundle.MaxArchiveChunks, 1 << 21},
		{"MaxArchiveChunkSize", bundle.MaxArchiveChunkSize, 8 << 20},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if bundle.ArchiveManifestMagic != "FERRYAM\x01" {
		t.Errorf("magic %q", bundle.ArchiveManifestMagic)
	}
}

func testManifest(t testing.TB) (*bundle.ArchiveManifest, []byte) {
	_, key, _ := ed25519.GenerateKey(bytes.NewReader(make([]byte, 64)))
	m := &bundle.ArchiveManifest{
		Item: [16]byte{1, 2}, Version: 3, Created: time.UnixMilli(1700000000123).UTC(),
		Title: "Site", Description: "d", Lang: "en", Source: "https://example.org/", Tags: []string{"a", "b"},
		Chunks: []bundle.ArchiveChunkRef{{Hash: [32]byte{9}, Size: 10}, {Hash: [32]byte{8}, Size: 5}},
		Files:  []bundle.ArchiveFile{{Path: "a.html", Size: 7}, {Path: "d/b.html", Size: 8, Mode: bundle.ArchiveModeExec}},
	}
	if err := m.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func TestArchiveManifestRoundTrip(t *testing.T) {
	m, b := testManifest(t)
	got, err := bundle.ParseArchiveManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	b2, _ := got.AppendBinary(nil)
	if !bytes.Equal(b, b2) || got.Title != m.Title || got.Size() != 15 {
		t.Fatal("round trip differs")
	}
	b[len(b)-1] ^= 1
	got, _ = bundle.ParseArchiveManifest(b)
	if err := got.Verify(); !errors.Is(err, bundle.ErrManifestSignature) {
		t.Fatalf("tampered signature: %v", err)
	}
}

func TestArchivePathsRefused(t *testing.T) {
	for _, p := range []string{"", ".", "..", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", `a\b`, "C:/x", "c:x",
		"CON", "nul.txt", "a/com1.html", "LPT9", "x.", "x ", "a\x00b", "a\nb", "a/", strings.Repeat("a", 1025)} {
		if err := bundle.ValidArchivePath(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	for _, p := range []string{"index.html", "a/b/c.css", "console.html", "com10", "ünï/çødé.txt", ".well-known/x"} {
		if err := bundle.ValidArchivePath(p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
}

func TestArchiveManifestBombs(t *testing.T) {
	m, _ := testManifest(t)
	hostile := []func(m *bundle.ArchiveManifest){
		func(m *bundle.ArchiveManifest) { m.Files[0].Size = 1 << 60 },
		func(m *bundle.ArchiveManifest) { m.Files[1].Path = "a.html/x" },
		func(m *bundle.ArchiveManifest) { m.Files[1].Path = "a.html" },
		func(m *bundle.ArchiveManifest) { m.Files[1].Mode = 0xa0 }, // symlink or device
		func(m *bundle.ArchiveManifest) { m.Chunks[0].Size = 0 },
	}
	for i, f := range hostile {
		c := *m
		c.Files = append([]bundle.ArchiveFile(nil), m.Files...)
		c.Chunks = append([]bundle.ArchiveChunkRef(nil), m.Chunks...)
		f(&c)
		if _, err := c.AppendBinary(nil); err == nil {
			t.Errorf("hostile manifest %d encoded", i)
		}
	}
	// A declared count of millions with nothing behind it is refused
	// before anything is allocated.
	_, b := testManifest(t)
	sb, _ := m.SignedBytes()
	head := sb[:bytes.Index(sb, []byte("https://example.org/"))+len("https://example.org/")]
	bomb := append(append([]byte(nil), head...), 0x00) // no tags
	bomb = append(bomb, 0x80, 0x80, 0x80, 0x01)        // 2^21 chunks
	if _, err := bundle.ParseArchiveManifest(bomb); err == nil {
		t.Fatal("chunk bomb accepted")
	}
	bomb = append(append([]byte(nil), head...), 0x00, 0x00, 0xff, 0xff, 0x3f) // ~1M files, no bytes
	if _, err := bundle.ParseArchiveManifest(bomb); err == nil || !strings.Contains(err.Error(), "remaining bytes") {
		t.Fatalf("file bomb: %v", err)
	}
	_ = b
}

func FuzzArchiveManifest(f *testing.F) {
	_, b := testManifest(f)
	f.Add(b)
	f.Add([]byte(bundle.ArchiveManifestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := bundle.ParseArchiveManifest(b)
		if err != nil {
			return
		}
		b2, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed manifest does not encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatal("round trip differs")
		}
	})
}

func testDelta() *bundle.ArchiveDelta {
	return &bundle.ArchiveDelta{Item: [16]byte{1}, Base: [32]byte{2}, Manifest: []byte("zstd frame"),
		Files: []bundle.ArchiveFilePatch{
			{File: 0, Kind: bundle.ArchivePatchLiteral, Data: []byte("<html>new</html>")},
			{File: 7, Kind: bundle.ArchivePatchZstd, Base: 5, Data: []byte{0x28, 0xb5, 0x2f, 0xfd}},
			{File: 300, Kind: bundle.ArchivePatchLiteral},
		}}
}

func TestArchiveDeltaRoundTrip(t *testing.T) {
	if bundle.RecordArchiveDelta != 0x12 || bundle.ArchiveDeltaMagic != "FERRYAD\x01" || bundle.MaxArchivePatchFile != 8<<20 ||
		bundle.ArchivePatchLiteral != 0 || bundle.ArchivePatchZstd != 1 {
		t.Fatal("archive delta wire constants changed")
	}
	d := testDelta()
	b, err := d.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bundle.ParseArchiveDelta(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.AppendBinary(nil)
	if !bytes.Equal(b, b2) || len(got.Files) != 3 || got.Files[1].Base != 5 || string(got.Files[0].Data) != "<html>new</html>" {
		t.Fatalf("round trip differs: %+v", got)
	}
	hostile := []func(d *bundle.ArchiveDelta){
		func(d *bundle.ArchiveDelta) { d.Files[1].File = 0 },                     // not ascending
		func(d *bundle.ArchiveDelta) { d.Files[1].Kind = 7 },                     // unknown kind
		func(d *bundle.ArchiveDelta) { d.Files[0].Base = 3 },                     // a literal with a base
		func(d *bundle.ArchiveDelta) { d.Files[1].Data = nil },                   // empty patch
		func(d *bundle.ArchiveDelta) { d.Manifest = nil },                        // no manifest
		func(d *bundle.ArchiveDelta) { d.Files[2].File = 1 << 20 },               // index over the file limit
		func(d *bundle.ArchiveDelta) { d.Files[0].Data = make([]byte, 8<<20+1) }, // over the patch limit
	}
	for i, f := range hostile {
		d := testDelta()
		f(d)
		if _, err := d.AppendBinary(nil); err == nil {
			t.Errorf("hostile delta %d encoded", i)
		}
	}
	// Truncations, declared sizes with nothing behind them, and trailing
	// bytes are refused.
	for i := range b {
		if _, err := bundle.ParseArchiveDelta(b[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	if _, err := bundle.ParseArchiveDelta(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	head := b[:len(bundle.ArchiveDeltaMagic)+48]
	bomb := append(append([]byte(nil), head...), 0x80, 0x80, 0x80, 0x20) // a 64 MiB manifest, absent
	if _, err := bundle.ParseArchiveDelta(bomb); err == nil {
		t.Fatal("manifest bomb accepted")
	}
	bomb = append(append([]byte(nil), head...), 0x01, 0x00, 0xff, 0xff, 0x3f) // ~1M files, no bytes
	if _, err := bundle.ParseArchiveDelta(bomb); err == nil || !strings.Contains(err.Error(), "remaining bytes") {
		t.Fatalf("file bomb: %v", err)
	}
}

func FuzzArchiveDelta(f *testing.F) {
	b, _ := testDelta().AppendBinary(nil)
	f.Add(b)
	f.Add([]byte(bundle.ArchiveDeltaMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := bundle.ParseArchiveDelta(b)
		if err != nil {
			return
		}
		b2, err := d.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed delta does not encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatal("round trip differs")
		}
	})
}
