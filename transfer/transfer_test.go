package transfer_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/bundle"
	"ferry/carriers/carriertest"
	"ferry/node"
	"ferry/transfer"
)

// The tests here seal transfer parts by hand, as a hostile or broken
// sender could, and take them in through node.Ingest at a real node.

type file struct {
	path string
	data string
}

// part seals one transfer part from n to dest with the given files, each
// as one record, and returns the bundle's ID.
func part(t *testing.T, n, dest *node.Node, h bundle.TransferHeader, files ...file) bundle.ID {
	t.Helper()
	id, _, err := n.SealRecords(t.Context(), dest.ID(), bundle.KindArchive, node.PriorityArchive, 0, func(w *bundle.Writer) error {
		b, err := h.AppendBinary(nil)
		if err != nil {
			return err
		}
		if err := w.WriteRecord(bundle.RecordTransfer, b); err != nil {
			return err
		}
		for _, f := range files {
			fh := bundle.FileHeader{Path: f.path, Size: uint64(len(f.data))}
			b, err := fh.AppendBinary(nil)
			if err != nil {
				return err
			}
			if err := w.WriteRecord(bundle.RecordFile, append(b, f.data...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// carry takes bundle id from one node's spool into another.
func carry(t *testing.T, from, to *node.Node, id bundle.ID) error {
	t.Helper()
	f, err := from.OpenBundle(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = to.Ingest(t.Context(), f)
	return err
}

func refused(t *testing.T, err error, why string) {
	t.Helper()
	var re *node.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("%s: got %v, want the bundle refused", why, err)
	}
	if !strings.Contains(err.Error(), "transfer") {
		t.Errorf("%s: refused for %v, not for what the transfer did", why, err)
	}
}

// files lists the regular files under the node's received folder,
// staging included.
func files(t *testing.T, n *node.Node) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(transfer.Received(n), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, ".claims") {
			rel, _ := filepath.Rel(transfer.Received(n), p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestHostilePartsAreRefusedWithNothingFiled(t *testing.T) {
	north, river := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	h := bundle.TransferHeader{ID: [16]byte{1}, Name: "t", Files: 10, Bytes: 1 << 20, Part: 1, Parts: 2}
	cases := []struct {
		why   string
		files []file
	}{
		{"a file twice", []file{{"a", "1"}, {"a", "2"}}},
		{"a file and a folder of the same name", []file{{"a", "1"}, {"a/b", "2"}}},
		{"a NUL in a name", []file{{"x", "1"}, {"bad\x00name", "2"}}},
		{"a name over 255 bytes", []file{{"x", "1"}, {strings.Repeat("n", 256), "2"}}},
		{"more files than announced", []file{{"1", ""}, {"2", ""}, {"3", ""}}},
	}
	carriertest.Introduce(t, north, river)
	for _, c := range cases {
		hh := h
		if c.why == "more files than announced" {
			hh.Files = 2
		}
		refused(t, carry(t, north, river, part(t, north, river, hh, c.files...)), c.why)
		if got := files(t, river); len(got) != 0 {
			t.Errorf("%s: refused, yet %v was left", c.why, got)
		}
	}

	// A second part that clashes with the first (a folder where a file
	// is) is refused before any of its files moves.
	if err := carry(t, north, river, part(t, north, river, h, file{"a", "first"})); err != nil {
		t.Fatal(err)
	}
	h.Part = 2
	refused(t, carry(t, north, river, part(t, north, river, h, file{"x", "second"}, file{"a/b", "clash"})), "a clash with part 1")
	if got := files(t, river); len(got) != 1 || got[0] != "north/t/a" {
		t.Errorf("after the refused part 2: %v, want only part 1's north/t/a", got)
	}
}

func TestTransferIDStaysItsSenders(t *testing.T) {
	north, river, mallory := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river"), carriertest.NewNode(t, "mallory")
	carriertest.Introduce(t, north, river, mallory)
	h := bundle.TransferHeader{ID: [16]byte{7}, Name: "guide", Files: 2, Bytes: 100, Part: 1, Parts: 2}
	if err := carry(t, north, river, part(t, north, river, h, file{"a", "north's"})); err != nil {
		t.Fatal(err)
	}
	h.Part = 2
	refused(t, carry(t, mallory, river, part(t, mallory, river, h, file{"a", "mallory's"})), "another sender's ID")
	b, err := os.ReadFile(filepath.Join(transfer.Received(river), "north", "guide", "a"))
	if err != nil || string(b) != "north's" {
		t.Fatalf("north's file reads %q, %v", b, err)
	}
}

func TestLongNamesStillFindAFolder(t *testing.T) {
	north, river := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, north, river)
	long := strings.Repeat("é", 127) // 254 bytes
	for i := range 2 {
		h := bundle.TransferHeader{ID: [16]byte{byte(i + 1)}, Name: "." + long, Files: 1, Bytes: 1, Part: 1, Parts: 1}
		if err := carry(t, north, river, part(t, north, river, h, file{"f", "x"})); err != nil {
			t.Fatalf("transfer %d with a 255-byte hidden name: %v", i+1, err)
		}
	}
	in, err := transfer.ListIn(t.Context(), river)
	if err != nil || len(in) != 2 {
		t.Fatalf("%d transfers listed, %v", len(in), err)
	}
	for _, x := range in {
		base := filepath.Base(x.Folder)
		if len(base) > 255 || strings.HasPrefix(base, ".") {
			t.Errorf("filed in %q (%d bytes)", base, len(base))
		}
	}
	if in[0].Folder == in[1].Folder {
		t.Errorf("both transfers filed in %s", in[0].Folder)
	}
}

// A folder left by a part killed before its commit (files, no row) is
// not given to another transfer of the same name.
func TestForeignFolderIsNotReused(t *testing.T) {
	north, river := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, north, river)
	stray := filepath.Join(transfer.Received(river), "north", "files")
	if err := os.MkdirAll(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stray, "keep.txt"), []byte("someone's"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := bundle.TransferHeader{ID: [16]byte{9}, Name: "files", Files: 1, Bytes: 1, Part: 1, Parts: 1}
	if err := carry(t, north, river, part(t, north, river, h, file{"keep.txt", "x"})); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(stray, "keep.txt")); string(b) != "someone's" {
		t.Errorf("the transfer wrote into a folder it did not claim: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(stray+" (2)", "keep.txt")); string(b) != "x" {
		t.Errorf("the transfer is not in files (2): %q", b)
	}
}

// TestFailedSendWithdrawsItsParts: a file that shrinks while a transfer
// is being written fails the send, and the parts already queued are
// taken back: nothing of the transfer waits for a carrier, and it is not
// listed as sent.
func TestFailedSendWithdrawsItsParts(t *testing.T) {
	north, river := carriertest.NewNode(t, "north"), carriertest.NewNode(t, "river")
	carriertest.Introduce(t, north, river)
	dir := t.TempDir()
	const parts = 8
	for i := range parts {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	last := filepath.Join(dir, fmt.Sprintf("f%d", parts-1))
	shrunk := false
	_, err := transfer.Send(t.Context(), north, river.ID(), []string{dir}, transfer.SendOptions{PartSize: 1 << 20,
		Progress: func(done, total int64) {
			if !shrunk { // the first part is under way; the last not begun
				shrunk = true
				if err := os.Truncate(last, 10); err != nil {
					t.Error(err)
				}
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "shrank") {
		t.Fatalf("send of a file that shrank: %v", err)
	}
	if out, err := north.Outgoing(t.Context(), river.ID()); err != nil || len(out) != 0 {
		t.Errorf("after the failed send, %d bundles wait for river (%v), want none", len(out), err)
	}
	if sent, err := transfer.ListOut(t.Context(), north); err != nil || len(sent) != 0 {
		t.Errorf("after the failed send, %d transfers listed as sent (%v)", len(sent), err)
	}
}
