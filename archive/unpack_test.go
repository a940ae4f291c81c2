package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

type zipEntry struct {
	name, body string
	dir        bool
	link       bool
	declare    uint64 // a declared size other than the body's
}

func zipBytes(t testing.TB, entries []zipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch {
		case e.dir:
			h.SetMode(fs.ModeDir | 0o755)
		case e.link:
			h.SetMode(fs.ModeSymlink | 0o777)
		}
		if e.declare != 0 {
			h.Method = zip.Store
			h.CRC32 = crc32.ChecksumIEEE([]byte(e.body))
			h.CompressedSize64, h.UncompressedSize64 = uint64(len(e.body)), e.declare
			w, err := zw.CreateRaw(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(e.body))
			continue
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeZip(t testing.TB, path string, entries []zipEntry) {
	if err := os.WriteFile(path, zipBytes(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
}

type tarEntry struct {
	name, body, link string
	typ              byte
	size             int64
}

func writeTar(t testing.TB, path string, entries []tarEntry) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Flush() // no Close: a declared size larger than the body is left short
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// zip64Declaring is a zip whose zip64 end record declares n entries.
func zip64Declaring(n uint64) []byte {
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, zipDir64EndSig)
	b = le.AppendUint64(b, 44)
	b = le.AppendUint16(b, 45)
	b = le.AppendUint16(b, 45)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, n)
	b = le.AppendUint64(b, n)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint32(b, zipDir64LocSig)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, zipDirEndSig)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0xffff)
	b = le.AppendUint16(b, 0xffff)
	b = le.AppendUint32(b, 0xffffffff)
	b = le.AppendUint32(b, 0xffffffff)
	b = le.AppendUint16(b, 0)
	return b
}

type hostileCase struct{ name, path, reason string }

// hostileArchives writes the hostile uploads every refusal test uses.
func hostileArchives(t testing.TB) []hostileCase {
	dir := t.(interface{ TempDir() string }).TempDir()
	var out []hostileCase
	add := func(name, reason string, write func(path string)) {
		path := filepath.Join(dir, name)
		write(path)
		out = append(out, hostileCase{name: name, path: path, reason: reason})
	}
	zipCase := func(name, reason string, entries ...zipEntry) {
		add(name, reason, func(p string) { writeZip(t, p, entries) })
	}
	zipCase("dotdot.zip", "leaves the item's root", zipEntry{name: "ok.txt", body: "x"}, zipEntry{name: "../evil.txt", body: "pwned"})
	zipCase("deep-dotdot.zip", "leaves the item's root", zipEntry{name: "a/../../evil.txt", body: "pwned"})
	zipCase("absolute.zip", "leaves the item's root", zipEntry{name: "/tmp/evil.txt", body: "pwned"})
	zipCase("symlink.zip", "is a symbolic link", zipEntry{name: "link", body: "/etc/passwd", link: true})
	zipCase("windows.zip", "cannot hold", zipEntry{name: "a\\..\\..\\evil.txt", body: "x"})
	zipCase("device-name.zip", "cannot hold", zipEntry{name: "CON.txt", body: "x"})
	zipCase("huge-declared.zip", "declared size past the limit", zipEntry{name: "a.bin", body: "small", declare: 1 << 40})
	add("bomb.zip", "declared size past the limit", func(p string) {
		writeZip(t, p, []zipEntry{{name: "zeros.bin", body: string(make([]byte, 11<<20))}})
	})
	add("million-entries.zip", "declares 3000000 entries", func(p string) { os.WriteFile(p, zip64Declaring(3_000_000), 0o644) })
	add("many-entries.zip", "holds more than 1000 entries", func(p string) {
		var es []zipEntry
		for i := range 1001 {
			es = append(es, zipEntry{name: fmt.Sprintf("f%d", i)})
		}
		b := zipBytes(t, es)
		// The end record claims one entry; the directory holds 1001.
		binary.LittleEndian.PutUint16(b[len(b)-12:], 1)
		binary.LittleEndian.PutUint16(b[len(b)-14:], 1)
		os.WriteFile(p, b, 0o644)
	})
	tarCase := func(name, reason string, entries ...tarEntry) {
		add(name, reason, func(p string) { writeTar(t, p, entries) })
	}
	tarCase("dotdot.tar", "leaves the item's root", tarEntry{name: "../evil.txt", body: "x", typ: tar.TypeReg})
	tarCase("symlink.tar", "is a symbolic link", tarEntry{name: "link", link: "/etc/passwd", typ: tar.TypeSymlink})
	tarCase("hardlink.tar", "is a hard link", tarEntry{name: "a.txt", body: "x", typ: tar.TypeReg}, tarEntry{name: "b", link: "../../etc/passwd", typ: tar.TypeLink})
	tarCase("device.tar", "not a regular file", tarEntry{name: "null", typ: tar.TypeChar})
	tarCase("huge-declared.tar", "declares 1099511627776 bytes", tarEntry{name: "a.bin", body: "x", typ: tar.TypeReg, size: 1 << 40})
	return out
}

func filepathWalk(t *testing.T, dir string, fn func(p string, d fs.DirEntry)) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			fn(p, d)
		}
		return nil
	})
}

// FuzzArchiveUnpack feeds arbitrary bytes to the zip and tar unpackers:
// they return an error or unpack within the root, never panic, never
// make a link.
func FuzzArchiveUnpack(f *testing.F) {
	f.Add(zipBytes(f, []zipEntry{{name: "a/b.txt", body: "x"}, {name: "../c", body: "y"}}), true)
	f.Add([]byte("not an archive"), false)
	f.Fuzz(func(t *testing.T, b []byte, asZip bool) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "root"), 0o755)
		root, err := os.OpenRoot(filepath.Join(dir, "root"))
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		lim := UnpackLimits{MaxEntries: 50, MaxBytes: 1 << 20}
		if asZip {
			UnpackZip(bytes.NewReader(b), int64(len(b)), root, lim)
		} else {
			UnpackTar(bytes.NewReader(b), root, lim)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("written next to the root: %v", ents)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("made %s (%v)", p, d.Type())
			}
			return nil
		})
	})
}
