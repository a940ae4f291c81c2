package usb_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
	"ferry/usb"
)

// The tests here run usb.Sync in process against real nodes (node.Init in
// a temporary folder) and a stick that is a plain folder, and assert what
// a person would check by looking at the stick and the inboxes.

// newNode makes a node with one user, named like the node.
func newNode(t *testing.T, name string) *node.Node {
	t.Helper()
	n, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.AddUser(t.Context(), userOf(n)); err != nil {
		t.Fatal(err)
	}
	return n
}

func userOf(n *node.Node) string { return "user-" + n.Name() }

// link makes every node trust every other.
func link(t *testing.T, ns ...*node.Node) {
	t.Helper()
	for _, a := range ns {
		card, err := a.Card(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range ns {
			if a != b {
				if _, err := b.AddPeer(t.Context(), card, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// sealMessage sends body from from's user to to's user and seals it into a
// bundle of its own, whose ID it returns.
func sealMessage(t *testing.T, from, to *node.Node, body string) bundle.ID {
	t.Helper()
	if _, err := from.Send(t.Context(), userOf(from), node.Address{User: userOf(to), Node: to.Name()}, body); err != nil {
		t.Fatal(err)
	}
	ids, err := from.Seal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("sealing one message made %d bundles, want 1", len(ids))
	}
	return ids[0]
}

// syncStick syncs n with the stick and requires success.
func syncStick(t *testing.T, n *node.Node, stick string) *usb.Report {
	t.Helper()
	rep, err := usb.Sync(t.Context(), n, stick, usb.Options{})
	if err != nil {
		t.Fatalf("%s syncs %s: %v", n.Name(), stick, err)
	}
	return rep
}

// canonical is where a bundle belongs on the stick.
func canonical(stick string, id bundle.ID) string {
	h := id.String()
	return filepath.Join(stick, "FERRY", "bundles", h[:2], h+".bundle")
}

// rel is a stick path as the report names it.
func rel(t *testing.T, stick, p string) string {
	t.Helper()
	r, err := filepath.Rel(stick, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stickFiles lists every file under the stick's FERRY/bundles, relative to
// the stick, sorted.
func stickFiles(t *testing.T, stick string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(stick, "FERRY", "bundles")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, rel(t, stick, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// received counts the messages a node's user received, by body.
func received(t *testing.T, n *node.Node) map[string]int {
	t.Helper()
	msgs, err := n.Inbox(t.Context(), userOf(n))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range msgs {
		if m.Direction == "in" {
			got[m.Body]++
		}
	}
	return got
}

// wantReceivedOnce fails unless n's user received exactly the bodies, once
// each.
func wantReceivedOnce(t *testing.T, n *node.Node, bodies ...string) {
	t.Helper()
	got := received(t, n)
	want := map[string]int{}
	for _, b := range bodies {
		want[b] = 1
	}
	if !mapsEqual(got, want) {
		t.Errorf("%s received %v, want each of %q once", n.Name(), got, bodies)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// findIssue returns the issue about file, failing the test unless there is
// exactly one.
func findIssue(t *testing.T, what string, issues []usb.Issue, file string) usb.Issue {
	t.Helper()
	var found []usb.Issue
	for _, i := range issues {
		if i.File == file {
			found = append(found, i)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want one entry for %s, got %d in %+v", what, file, len(found), issues)
	}
	if found[0].Reason == "" {
		t.Errorf("%s: %s reported without a reason", what, file)
	}
	return found[0]
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// payloadOffset returns where a bundle file's payload starts.
func payloadOffset(t *testing.T, p string) int64 {
	t.Helper()
	in, err := bundle.Inspect(bytes.NewReader(mustRead(t, p)))
	if err != nil {
		t.Fatal(err)
	}
	if !in.SignatureValid || !in.PayloadValid {
		t.Fatalf("%s is not a whole, valid bundle before the test damages it: %+v", p, in)
	}
	return in.PayloadOffset
}

// TestSyncRefusesDamagedBundlesAndRestoresRenamedOnes damages bundles on a
// stick the ways a person or a failing stick can: truncated, emptied, a
// bit flipped in the signature and in the payload, renamed, moved to
// another shard folder. The damaged ones are refused with their reason and
// moved to FERRY/damaged; the renamed ones are taken in and put back under
// their names; the sender, seeing them gone, puts the damaged ones on the
// stick again, and in the end nothing is lost.
func TestSyncRefusesDamagedBundlesAndRestoresRenamedOnes(t *testing.T) {
	north, river, hill := newNode(t, "north"), newNode(t, "river"), newNode(t, "hill")
	link(t, north, river, hill)
	stick := t.TempDir()

	type victim struct {
		name string
		to   *node.Node
		id   bundle.ID
		body string
	}
	vs := map[string]*victim{}
	for _, v := range []*victim{
		{name: "truncated", to: river}, {name: "emptied", to: river},
		{name: "signature-flip", to: river}, {name: "payload-flip", to: hill},
		{name: "renamed", to: hill}, {name: "other-shard", to: hill}, {name: "untouched", to: river},
	} {
		v.body = "north to " + v.to.Name() + ": " + v.name
		v.id = sealMessage(t, north, v.to, v.body)
		vs[v.name] = v
	}
	rep := syncStick(t, north, stick)
	if rep.Exported != len(vs) {
		t.Fatalf("north exported %d bundles to a new stick, want %d", rep.Exported, len(vs))
	}

	path := func(name string) string { return canonical(stick, vs[name].id) }
	// Damage.
	b := mustRead(t, path("truncated"))
	mustWrite(t, path("truncated"), b[:len(b)-10])
	mustWrite(t, path("emptied"), nil)
	off := payloadOffset(t, path("signature-flip"))
	b = mustRead(t, path("signature-flip"))
	b[off-1] ^= 0x01 // the last byte of the signature
	mustWrite(t, path("signature-flip"), b)
	off = payloadOffset(t, path("payload-flip"))
	b = mustRead(t, path("payload-flip"))
	b[off+int64(len(b)-int(off))/2] ^= 0x40 // the middle of the payload
	mustWrite(t, path("payload-flip"), b)
	damagedBytes := map[string][]byte{}
	for _, name := range []string{"truncated", "emptied", "signature-flip", "payload-flip"} {
		damagedBytes[name] = mustRead(t, path(name))
	}
	// Rename: once in the same folder, once into another shard folder.
	renamedTo := filepath.Join(filepath.Dir(path("renamed")), "copy of a letter.bundle")
	if err := os.Rename(path("renamed"), renamedTo); err != nil {
		t.Fatal(err)
	}
	h := vs["other-shard"].id.String()
	otherShard := "00"
	if h[:2] == otherShard {
		otherShard = "ff"
	}
	movedTo := filepath.Join(stick, "FERRY", "bundles", otherShard, h+".bundle")
	mustWrite(t, movedTo, mustRead(t, path("other-shard")))
	if err := os.Remove(path("other-shard")); err != nil {
		t.Fatal(err)
	}

	rep = syncStick(t, river, stick)
	wantReasons := map[string][]string{
		"truncated":      {"truncated"},
		"emptied":        {"truncated", "EOF", "empty", "not a ferry bundle"},
		"signature-flip": {"signature"},
		"payload-flip":   {"hash"},
	}
	if len(rep.Refused) != len(wantReasons) {
		t.Errorf("river refused %d files, want %d: %+v", len(rep.Refused), len(wantReasons), rep.Refused)
	}
	for name, words := range wantReasons {
		is := findIssue(t, "refused", rep.Refused, rel(t, stick, path(name)))
		if !slices.ContainsFunc(words, func(w string) bool { return strings.Contains(is.Reason, w) }) {
			t.Errorf("%s bundle refused for %q, want a reason saying one of %q", name, is.Reason, words)
		}
		if exists(path(name)) {
			t.Errorf("%s bundle is still in FERRY/bundles after being refused", name)
		}
		moved := filepath.Join(stick, "FERRY", "damaged", vs[name].id.String()+".damaged")
		if got, err := os.ReadFile(moved); err != nil || !bytes.Equal(got, damagedBytes[name]) {
			t.Errorf("%s bundle: FERRY/damaged does not hold it as it was (%v)", name, err)
		}
	}
	if rep.Applied != 1 || rep.Stored != 2 || rep.Messages != 1 {
		t.Errorf("river applied %d (%d messages) and stored %d, want the untouched bundle applied and the two renamed ones stored",
			rep.Applied, rep.Messages, rep.Stored)
	}
	for _, name := range []string{"renamed", "other-shard"} {
		if !exists(path(name)) {
			t.Errorf("%s bundle is not back under its name %s", name, rel(t, stick, path(name)))
		}
	}
	for _, p := range []string{renamedTo, movedTo} {
		if exists(p) {
			t.Errorf("%s is still on the stick beside the bundle's own name", rel(t, stick, p))
		}
	}
	wantReceivedOnce(t, river, vs["untouched"].body)

	// Hill takes the renamed bundles; north sees the damaged ones gone
	// and puts them on again; river and hill take them.
	rep = syncStick(t, hill, stick)
	if rep.Applied != 2 || len(rep.Refused) != 0 {
		t.Errorf("hill applied %d bundles and refused %+v, want the two renamed ones applied", rep.Applied, rep.Refused)
	}
	rep = syncStick(t, north, stick)
	if rep.Exported != len(wantReasons) {
		t.Errorf("north put %d bundles back on the stick, want the %d refused ones", rep.Exported, len(wantReasons))
	}
	syncStick(t, river, stick)
	syncStick(t, hill, stick)
	var toRiver, toHill []string
	for _, v := range vs {
		if v.to == river {
			toRiver = append(toRiver, v.body)
		} else {
			toHill = append(toHill, v.body)
		}
	}
	wantReceivedOnce(t, river, toRiver...)
	wantReceivedOnce(t, hill, toHill...)
}

// TestSyncLeavesForeignFilesAlone puts a person's files among the stick's:
// a note and a photo in FERRY/bundles, a folder of photos there and an
// empty one, a folder beside FERRY/bundles, a note in FERRY/inventory and
// a photo folder at the top of the stick. The sync reports those in
// ferry's folders, takes in the real bundle, and neither moves nor
// deletes any of them.
func TestSyncLeavesForeignFilesAlone(t *testing.T) {
	north, river := newNode(t, "north"), newNode(t, "river")
	link(t, north, river)
	stick := t.TempDir()
	const body = "the ferry runs again on monday"
	sealMessage(t, north, river, body)
	syncStick(t, north, stick)

	photo := append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte("jpeg"), 1000)...)
	foreign := map[string][]byte{
		"FERRY/bundles/notes.txt":           []byte("buy rope, lamp oil\n"),
		"FERRY/bundles/IMG_0001.JPG":        photo,
		"FERRY/bundles/holiday/beach.jpg":   photo,
		"FERRY/bundles/ab/readme.txt":       []byte("a note in a shard folder\n"),
		"FERRY/photos/IMG_0002.JPG":         photo,
		"FERRY/inventory/notes.txt":         []byte("who has the stick: anna\n"),
		"DCIM/100CANON/IMG_0003.JPG":        photo,
		"FERRY/bundles/.DS_Store":           []byte("\x00\x00\x00\x01Bud1"),
		"FERRY/bundles/holiday/.hidden.txt": []byte("hidden\n"),
		"FERRY/photos/film.part":            []byte("half a download\n"),
	}
	for p, b := range foreign {
		mustWrite(t, filepath.Join(stick, p), b)
	}
	emptyFolder := filepath.Join(stick, "FERRY", "bundles", "to sort")
	if err := os.MkdirAll(emptyFolder, 0o755); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		rep := syncStick(t, river, stick)
		if i == 0 && (rep.Applied != 1 || rep.Messages != 1) {
			t.Errorf("river applied %d bundles (%d messages), want the one bundle among the foreign files", rep.Applied, rep.Messages)
		}
		if len(rep.Refused) != 0 {
			t.Errorf("sync %d refused %+v: foreign files are not damaged bundles", i+1, rep.Refused)
		}
		for _, p := range []string{"FERRY/bundles/notes.txt", "FERRY/bundles/IMG_0001.JPG", "FERRY/bundles/holiday/beach.jpg",
			"FERRY/bundles/ab/readme.txt", "FERRY/bundles/holiday", "FERRY/bundles/to sort"} {
			findIssue(t, fmt.Sprintf("sync %d: left", i+1), rep.Left, filepath.FromSlash(p))
		}
		findIssue(t, fmt.Sprintf("sync %d: ignored", i+1), rep.Ignored, filepath.FromSlash("FERRY/inventory/notes.txt"))
		for p, want := range foreign {
			if got, err := os.ReadFile(filepath.Join(stick, p)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("sync %d: %s was moved, changed or deleted (%v)", i+1, p, err)
			}
		}
		if !exists(emptyFolder) {
			t.Errorf("sync %d: the person's empty folder FERRY/bundles/to sort was deleted", i+1)
		}
		if es, _ := os.ReadDir(filepath.Join(stick, "FERRY", "damaged")); len(es) != 0 {
			t.Errorf("sync %d: FERRY/damaged holds %d files, want none", i+1, len(es))
		}
	}
	wantReceivedOnce(t, river, body)
}

// TestSyncTwiceChangesNothing syncs the same stick twice in a row at each
// node: the second sync takes in, writes and prunes nothing.
func TestSyncTwiceChangesNothing(t *testing.T) {
	north, river := newNode(t, "north"), newNode(t, "river")
	link(t, north, river)
	stick := t.TempDir()
	sealMessage(t, north, river, "one")
	sealMessage(t, north, river, "two")
	if _, err := river.Send(t.Context(), userOf(river), node.Address{User: userOf(north), Node: "north"}, "three"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node.Node{north, river, north, river} {
		first := syncStick(t, n, stick)
		files := stickFiles(t, stick)
		second := syncStick(t, n, stick)
		if second.Applied+second.Stored+second.Messages+second.Receipts != 0 || second.Exported != 0 || second.Pruned != 0 ||
			len(second.Refused) != 0 || len(second.Ignored) != 0 {
			t.Errorf("%s's second sync in a row did something: %+v (first: %+v)", n.Name(), second, first)
		}
		if second.Duplicates != len(files) || second.Bundles != len(files) {
			t.Errorf("%s's second sync: %d already seen, %d on the stick; the stick holds %d", n.Name(), second.Duplicates, second.Bundles, len(files))
		}
		if after := stickFiles(t, stick); !slices.Equal(after, files) {
			t.Errorf("%s's second sync changed the stick's bundles from %v to %v", n.Name(), files, after)
		}
	}
	wantReceivedOnce(t, river, "one", "two")
	wantReceivedOnce(t, north, "three")
}

// forgedInventory returns an inventory signed by key and claiming that its
// node holds ids and takes bundles for wants.
func forgedInventory(t *testing.T, key ed25519.PrivateKey, ids []bundle.ID, wants ...bundle.NodeID) (bundle.NodeID, []byte) {
	t.Helper()
	var self bundle.NodeID
	copy(self[:], key.Public().(ed25519.PublicKey))
	inv := &usb.Inventory{Node: self, Name: "forger", At: time.Now(), Wants: append([]bundle.NodeID{self}, wants...)}
	inv.SetHolds(ids)
	b, err := inv.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return self, b
}

// TestSyncIgnoresForgedInventories leaves inventories on the stick that
// claim hill has received north's bundle for hill: one by a node nobody
// trusts under its own name, one in hill's name signed by that node's key,
// one with hill's ID inside but another key's signature. Each is ignored
// with its reason, and none makes river or north drop the bundle.
func TestSyncIgnoresForgedInventories(t *testing.T) {
	north, river, hill := newNode(t, "north"), newNode(t, "river"), newNode(t, "hill")
	link(t, north, river, hill)
	stick := t.TempDir()
	const body = "north to hill: the pass is open"
	id := sealMessage(t, north, hill, body)
	syncStick(t, north, stick)

	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	forger, own := forgedInventory(t, key, []bundle.ID{id}, hill.ID())
	invDir := filepath.Join(stick, "FERRY", "inventory")
	unknown := filepath.Join(invDir, forger.String()+".inv")
	mustWrite(t, unknown, own)
	misnamed := filepath.Join(invDir, hill.ID().String()+".inv")
	mustWrite(t, misnamed, own)
	// Hill's ID inside, the forger's signature: the bytes of a real
	// inventory layout with the node field replaced.
	impostor := bytes.Clone(own)
	hid := hill.ID()
	if !bytes.Equal(impostor[10:42], forger[:]) {
		t.Fatalf("inventory layout changed: node ID not at bytes 10-42")
	}
	copy(impostor[10:42], hid[:])
	impostorPath := filepath.Join(stick, "FERRY", "inventory", "impostor.inv")
	mustWrite(t, impostorPath, impostor)

	for _, n := range []*node.Node{river, north} {
		rep := syncStick(t, n, stick)
		is := findIssue(t, n.Name()+": ignored", rep.Ignored, rel(t, stick, unknown))
		if !strings.Contains(is.Reason, "unknown") {
			t.Errorf("%s: inventory of an unknown node ignored for %q, want a reason naming the node unknown", n.Name(), is.Reason)
		}
		is = findIssue(t, n.Name()+": ignored", rep.Ignored, rel(t, stick, misnamed))
		if !strings.Contains(is.Reason, "name") {
			t.Errorf("%s: inventory under hill's name signed by another node ignored for %q, want a reason about the name", n.Name(), is.Reason)
		}
		is = findIssue(t, n.Name()+": ignored", rep.Ignored, rel(t, stick, impostorPath))
		if !strings.Contains(is.Reason, "signature") {
			t.Errorf("%s: inventory with hill's ID and another key's signature ignored for %q, want a reason about the signature", n.Name(), is.Reason)
		}
		if len(rep.Ignored) != 3 {
			t.Errorf("%s ignored %+v, want exactly the three forged inventories", n.Name(), rep.Ignored)
		}
		if rep.Pruned != 0 || !exists(canonical(stick, id)) {
			t.Errorf("%s pruned %d bundles: a forged inventory made it drop the bundle for hill", n.Name(), rep.Pruned)
		}
		if want := []string{"north", "river"}; !slices.Equal(rep.Inventories, want) {
			t.Errorf("%s counts the stick's inventories as %v, want only the real %v", n.Name(), rep.Inventories, want)
		}
		for _, p := range []string{unknown, misnamed, impostorPath} {
			if !exists(p) {
				t.Errorf("%s deleted %s", n.Name(), rel(t, stick, p))
			}
		}
	}
	held, err := north.Held(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(held, func(b node.BundleInfo) bool { return b.ID == id }) {
		t.Errorf("north no longer holds its bundle for hill: a forged inventory settled it")
	}
	if held, err = river.Held(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(held, func(b node.BundleInfo) bool { return b.ID == id }) {
		t.Errorf("river no longer carries north's bundle for hill: a forged inventory settled it")
	}

	// The real hill takes it, and its real inventory prunes it.
	rep := syncStick(t, hill, stick)
	if rep.Applied != 1 || rep.Pruned != 1 || exists(canonical(stick, id)) {
		t.Errorf("hill applied %d and pruned %d, want its bundle applied and pruned", rep.Applied, rep.Pruned)
	}
	wantReceivedOnce(t, hill, body)
}

// mountTmpfs mounts a tmpfs of sizeMiB on a new folder, unmounted when the
// test ends, or says why it cannot.
func mountTmpfs(t *testing.T, sizeMiB int) (string, error) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), "tmpfs", dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mount -t tmpfs: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir, nil
}

// freeBytes returns the bytes free on the file system holding path.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestSyncStickFullMidWrite fills the stick while a bundle is being
// written to it, as when a stick is smaller than it claims or something
// else writes to it: the write fails for want of space half way. The sync
// still ends well, reports what did not fit, leaves no half bundle and no
// temporary file, writes its inventory, and the next sync, with room
// again, puts the rest on.
func TestSyncStickFullMidWrite(t *testing.T) {
	stick, err := mountTmpfs(t, 8)
	if err != nil {
		t.Skipf("cannot mount a tmpfs here, and a folder cannot fill up on cue: %v", err)
	}
	north, river := newNode(t, "north"), newNode(t, "river")
	link(t, north, river)
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-+*/()"
	var bodies []string
	for i := range 3 {
		for j := range 24 {
			b := make([]byte, 60000)
			for k := range b {
				b[k] = alphabet[rng.IntN(len(alphabet))]
			}
			body := fmt.Sprintf("bundle %d part %d %s", i, j, b)
			if _, err := north.Send(t.Context(), userOf(north), node.Address{User: userOf(river), Node: "river"}, body); err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, body)
		}
		if ids, err := north.Seal(t.Context()); err != nil || len(ids) != 1 {
			t.Fatalf("seal: %d bundles, %v", len(ids), err)
		}
	}
	held, err := north.Held(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range held {
		total += b.Size
	}
	if len(held) != 3 || total > freeBytes(t, stick)-(1<<20) || held[0].Size < 1<<20 {
		t.Fatalf("want 3 bundles of over 1 MiB that fit the stick together; have %d of %d bytes in all", len(held), total)
	}

	// Part way into the second bundle, fill the stick but for 64 KiB.
	filler := filepath.Join(stick, "filler")
	filled := false
	opts := usb.Options{Reserve: 1, Progress: func(p usb.Progress) {
		if p.Phase != "export" || filled || p.Done < held[0].Size+held[0].Size/4 {
			return
		}
		filled = true
		if err := os.WriteFile(filler, make([]byte, freeBytes(t, stick)-64<<10), 0o644); err != nil {
			t.Errorf("filling the stick: %v", err)
		}
	}}
	rep, err := usb.Sync(t.Context(), north, stick, opts)
	if err != nil {
		t.Fatalf("sync to a stick that filled up: %v", err)
	}
	if !filled {
		t.Fatal("the export never reached the second bundle")
	}
	files := stickFiles(t, stick)
	if rep.Exported != 1 || rep.NotFitted != 2 || len(files) != 1 {
		t.Errorf("exported %d, %d did not fit, stick holds %v; want 1 bundle written and 2 that did not fit", rep.Exported, rep.NotFitted, files)
	}
	for _, f := range files {
		payloadOffset(t, filepath.Join(stick, f)) // fails unless whole
	}
	if !exists(filepath.Join(stick, "FERRY", "inventory", north.ID().String()+".inv")) {
		t.Errorf("no inventory written after the stick filled up")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	rep = syncStick(t, north, stick)
	if rep.Exported != 2 || rep.NotFitted != 0 || rep.OnStick != 1 {
		t.Errorf("with room again: %d exported, %d did not fit, %d already there; want 2, 0, 1", rep.Exported, rep.NotFitted, rep.OnStick)
	}
	rep = syncStick(t, river, stick)
	if rep.Applied != 3 {
		t.Errorf("river applied %d bundles, want 3", rep.Applied)
	}
	wantReceivedOnce(t, river, bodies...)
}
