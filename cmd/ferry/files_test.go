package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/transfer"
)

// transferPair makes north and river, trusting each other, and a folder
// "guide" (makeTree) with a random file of big bytes, all under root.
func transferPair(t *testing.T, big int) (root string, north, river community, tree string) {
	t.Helper()
	root = t.TempDir()
	north = newCommunity(t, root, "north", "alice")
	river = newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	tree = filepath.Join(root, "guide")
	makeTree(t, tree, big)
	return root, north, river, tree
}

// makeTree writes a folder of files of every shape a transfer must
// carry: nested folders, an empty file, a file larger than one record
// (16 MiB), a name that is not ASCII, and many small files.
func makeTree(t *testing.T, dir string, big int) {
	t.Helper()
	write := func(p string, b []byte) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	write("empty", nil)
	write("a/b/c/deep.txt", []byte("deep\n"))
	write("école/ça.txt", []byte("ça va\n"))
	write("media/big.bin", random(big))
	for i := range 120 {
		write(fmt.Sprintf("pages/p%03d.html", i), bytes.Repeat([]byte(fmt.Sprintf("<p>page %d of the clinic guide</p>\n", i)), 200+i))
	}
	for i := range 6 {
		write(fmt.Sprintf("media/m%d.bin", i), random(300<<10))
	}
}

// ferryJSON runs the binary with args (which ask for --json) and decodes
// what it prints.
func ferryJSON[T any](t *testing.T, args ...string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(mustFerry(t, args...)), &v); err != nil {
		t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	return v
}

func filesIn(t *testing.T, c community) []transfer.In {
	return ferryJSON[[]transfer.In](t, "files", "list", "--data", c.data, "--json")
}

// TestFilesTransferByStick sends a folder north → river on a stick, in
// several parts, checks it arrives whole and once, that north sees every
// part delivered, and that a second transfer of the same name gets a
// folder of its own.
func TestFilesTransferByStick(t *testing.T) {
	root, north, river, tree := transferPair(t, 20<<20)

	rep := ferryJSON[transfer.SendReport](t, "files", "send", "--data", north.data, "--to", "river", "--part-mib", "4", "--note", "for the clinic", "--json", tree)
	if rep.Files != 130 || rep.Parts < 3 || rep.Name != "guide" {
		t.Fatalf("send: %+v, want 130 files in 3 or more parts", rep)
	}
	stick := mkdir(t, filepath.Join(root, "stick"))
	mustFerry(t, "usb", "sync", "--data", north.data, stick)
	mustFerry(t, "usb", "sync", "--data", river.data, stick)
	mustFerry(t, "usb", "sync", "--data", river.data, stick) // the same stick twice: nothing new

	got := filesIn(t, river)
	if len(got) != 1 || !got[0].Complete || got[0].GotFiles != 130 || got[0].GotParts != int64(rep.Parts) ||
		got[0].From != "north" || got[0].Note != "for the clinic" {
		t.Fatalf("river's transfers: %+v", got)
	}
	folder := filepath.Join(river.data, "received", "north", "guide")
	if got[0].Folder != folder {
		t.Errorf("filed in %s, want %s", got[0].Folder, folder)
	}
	sameTree(t, tree, folder)
	if left, _ := os.ReadDir(filepath.Join(river.data, "received", ".staging")); len(left) != 0 {
		t.Errorf("staging folder holds %d entries after the import", len(left))
	}

	// The receipts go back on the stick; north then sees every part delivered.
	mustFerry(t, "usb", "sync", "--data", north.data, stick)
	sent := ferryJSON[[]transfer.Out](t, "files", "sent", "--data", north.data, "--json")
	if len(sent) != 1 || sent[0].Delivered != int64(rep.Parts) || sent[0].Queued != int64(rep.Parts) {
		t.Fatalf("north's transfers: %+v, want %d parts delivered", sent, rep.Parts)
	}
	if !strings.Contains(mustFerry(t, "files", "sent", "--data", north.data), fmt.Sprintf("%d/%d parts delivered", rep.Parts, rep.Parts)) {
		t.Error("files sent does not say the parts were delivered")
	}

	// A second transfer named "guide" does not mix with the first.
	if err := os.WriteFile(filepath.Join(tree, "empty"), []byte("not empty now"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFerry(t, "files", "send", "--data", north.data, "--to", "river", tree)
	mustFerry(t, "usb", "sync", "--data", north.data, stick)
	mustFerry(t, "usb", "sync", "--data", river.data, stick)
	sameTree(t, tree, filepath.Join(river.data, "received", "north", "guide (2)"))
	if b, _ := os.ReadFile(filepath.Join(folder, "empty")); len(b) != 0 {
		t.Error("the second transfer changed the first one's files")
	}
}

// TestFilesTransferRefusesDamage: a transfer bundle bit-flipped or cut
// short on the stick is refused with its reason and leaves no file.
func TestFilesTransferRefusesDamage(t *testing.T) {
	root, north, river, tree := transferPair(t, 1<<20)
	mustFerry(t, "files", "send", "--data", north.data, "--to", "river", tree)

	for _, damage := range []string{"flip", "cut"} {
		t.Run(damage, func(t *testing.T) {
			stick := mkdir(t, filepath.Join(root, "stick-"+damage))
			mustFerry(t, "usb", "sync", "--data", north.data, stick)
			bundles, _ := filepath.Glob(filepath.Join(stick, "FERRY", "bundles", "*", "*.bundle"))
			if len(bundles) != 1 {
				t.Fatalf("%d bundles on the stick, want 1", len(bundles))
			}
			b, err := os.ReadFile(bundles[0])
			if err != nil {
				t.Fatal(err)
			}
			if damage == "flip" {
				b[len(b)*2/3] ^= 0x10
			} else {
				b = b[:len(b)*2/3]
			}
			if err := os.WriteFile(bundles[0], b, 0o644); err != nil {
				t.Fatal(err)
			}
			r := ferry(t, "usb", "sync", "--data", river.data, stick)
			if !strings.Contains(r.stdout+r.stderr, "refused") && !strings.Contains(r.stdout+r.stderr, "damaged") {
				t.Errorf("usb sync of a damaged transfer said nothing of it:\n%s%s", r.stdout, r.stderr)
			}
			if l := filesIn(t, river); len(l) != 0 {
				t.Errorf("river lists %d transfers from a damaged bundle", len(l))
			}
			filepath.WalkDir(filepath.Join(river.data, "received"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					t.Errorf("a damaged transfer left %s", p)
				}
				return nil
			})
		})
	}
}

// TestFilesTransferSurvivesSIGKILL kills river's import of a transfer at
// random moments: every file in the transfer's folder is whole whenever
// one is there, and the last sync files everything once.
func TestFilesTransferSurvivesSIGKILL(t *testing.T) {
	const minKills = 12
	rng := crashRand(t)
	root, north, river, tree := transferPair(t, 6<<20)
	mustFerry(t, "files", "send", "--data", north.data, "--to", "river", "--part-mib", "1", tree)
	stick := mkdir(t, filepath.Join(root, "stick"))
	mustFerry(t, "usb", "sync", "--data", north.data, stick)

	// Calibrate on a copy of river and of the stick.
	copyTree(t, river.data, filepath.Join(root, "calib-river"))
	copyTree(t, stick, filepath.Join(root, "calib-stick"))
	_, full := timedFerry(t, "usb", "sync", "--data", filepath.Join(root, "calib-river"), filepath.Join(root, "calib-stick"))

	want := treeFiles(t, tree)
	folder := filepath.Join(river.data, "received", "north", "guide")
	check := func() {
		if _, err := os.Stat(folder); err != nil {
			return // nothing filed yet
		}
		for rel, b := range treeFiles(t, folder) {
			if w, ok := want[rel]; !ok || !bytes.Equal(b, w) {
				t.Errorf("after a kill, %s is not a whole file of the transfer (%d bytes)", rel, len(b))
			}
		}
	}
	kills, runs := 0, 0
	top := killTopUp{rng: rng, lo: full / 10, hi: full}
	top.until(t, minKills, 8*minKills, func() int { return kills }, func() int { return runs }, func(d time.Duration) crashRun {
		r := runKilledAfter(t, d, "usb", "sync", "--data", river.data, stick)
		runs++
		if r.killed {
			kills++
		}
		check()
		return r
	})
	t.Logf("%d runs, %d killed (whole import took %v)", runs, kills, full)
	mustFerry(t, "usb", "sync", "--data", river.data, stick)
	sameTree(t, tree, folder)
	l := filesIn(t, river)
	if len(l) != 1 || !l[0].Complete || l[0].GotFiles != int64(len(want)) {
		t.Fatalf("after the kills: %+v, want one complete transfer of %d files", l, len(want))
	}
	// What the killed imports staged goes with the next transfer's ingest.
	note := filepath.Join(root, "note.txt")
	if err := os.WriteFile(note, []byte("more soon"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFerry(t, "files", "send", "--data", north.data, "--to", "river", note)
	mustFerry(t, "usb", "sync", "--data", north.data, stick)
	mustFerry(t, "usb", "sync", "--data", river.data, stick)
	if left, _ := os.ReadDir(filepath.Join(river.data, "received", ".staging")); len(left) != 0 {
		t.Errorf("%d staging folders of killed imports are left after the next transfer", len(left))
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyTree copies a folder of regular files.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTransferOpensWithAgeAndZstd: a transfer's bundle, with its media
// stored in raw frames and its text compressed, opens with the reference
// tools, and its records hold the files.
func TestTransferOpensWithAgeAndZstd(t *testing.T) {
	ageBin, zstdBin := requireTool(t, "age"), requireTool(t, "zstd")
	root, north, river, tree := transferPair(t, 2<<20)
	want := treeFiles(t, tree)
	var total int
	for _, b := range want {
		total += len(b)
	}
	mustFerry(t, "files", "send", "--data", north.data, "--to", "river", tree)
	stick := mkdir(t, filepath.Join(root, "stick"))
	mustFerry(t, "usb", "sync", "--data", north.data, stick)
	bundles, _ := filepath.Glob(filepath.Join(stick, "FERRY", "bundles", "*", "*.bundle"))
	if len(bundles) != 1 {
		t.Fatalf("%d bundles on the stick, want 1", len(bundles))
	}
	in := inspectFile(t, bundles[0])
	raw, err := os.ReadFile(bundles[0])
	if err != nil {
		t.Fatal(err)
	}
	compressed := runTool(t, raw[in.PayloadOffset:], ageBin, "-d", "-i", filepath.Join(river.data, "identity.txt"))
	content := runTool(t, compressed, zstdBin, "-d", "-c")
	got := map[string][]byte{}
	var head *bundle.TransferHeader
	for rest := content; len(rest) > 0; {
		typ, body, next, err := splitRecord(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = next
		switch bundle.RecordType(typ) {
		case bundle.RecordTransfer:
			if head, err = bundle.ParseTransferHeader(body); err != nil {
				t.Fatal(err)
			}
		case bundle.RecordFile:
			fh, n, err := bundle.ParseFileHeader(body)
			if err != nil {
				t.Fatal(err)
			}
			got[fh.Path] = append(got[fh.Path], body[n:]...)
		default:
			t.Errorf("record type %d in a transfer", typ)
		}
	}
	if head == nil || head.Name != "guide" || head.Files != uint64(len(want)) {
		t.Fatalf("transfer header %+v", head)
	}
	for p, b := range want {
		if !bytes.Equal(got[p], b) {
			t.Errorf("%s: the records hold %d bytes, want the file's %d", p, len(got[p]), len(b))
		}
	}
	// 3.8 MiB of random media stored, 0.2 MB of text compressed: the
	// bundle is barely larger than the media.
	if in.PayloadLength > uint64(total) {
		t.Errorf("payload %d bytes for %d bytes of files", in.PayloadLength, total)
	}
	t.Logf("files %d bytes, payload %d, content %d", total, in.PayloadLength, len(content))
}

// TestTransferBlockedLocallyKeepsTheRestMoving: a part this node cannot
// file (a plain file sits where the sender's folder goes) fails the sync
// with its reason and stays on the stick, while the message on the same
// stick is taken in; put right, the next sync files it.
func TestTransferBlockedLocallyKeepsTheRestMoving(t *testing.T) {
	root, north, river, tree := transferPair(t, 1<<20)
	mustFerry(t, "files", "send", "--data", north.data, "--to", "river", tree)
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "the boat leaves at dawn")
	stick := mkdir(t, filepath.Join(root, "stick"))
	mustFerry(t, "usb", "sync", "--data", north.data, stick)

	blocker := filepath.Join(river.data, "received", "north")
	if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ferry(t, "usb", "sync", "--data", river.data, stick)
	if r.code != 1 || !strings.Contains(r.stderr, "failed") || !strings.Contains(r.stderr, "left on the stick") {
		t.Fatalf("usb sync with a blocked transfer: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(mustFerry(t, "inbox", "--data", river.data, "--user", "bob"), "the boat leaves at dawn") {
		t.Error("the message on the same stick was not taken in")
	}
	if len(filesIn(t, river)) != 0 {
		t.Error("a transfer that could not be filed is listed")
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	mustFerry(t, "usb", "sync", "--data", river.data, stick)
	sameTree(t, tree, filepath.Join(river.data, "received", "north", "guide"))
}
