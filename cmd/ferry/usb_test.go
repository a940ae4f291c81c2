package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
	"ferry/usb"
)

// The USB tests walk a stick between communities through the real binary,
// 'ferry usb sync --json', on a plain folder and, where the machine lets
// the test mount one (CI runs as root), on a size-limited tmpfs and a
// FAT image, and do to the stick what people and power cuts do to it.

// stickReport is the part of 'ferry usb sync --json' the tests read,
// decoded by the field names the CLI prints, so that a renamed field fails.
type stickReport struct {
	Applied     int          `json:"applied"`
	Stored      int          `json:"stored"`
	Duplicates  int          `json:"duplicates"`
	Messages    int          `json:"messages"`
	Receipts    int          `json:"receipts"`
	Exported    int          `json:"exported"`
	OnStick     int          `json:"already_on_stick"`
	NotFitted   int          `json:"not_fitted"`
	Pruned      int          `json:"pruned"`
	Debris      int          `json:"debris_removed"`
	Left        []stickIssue `json:"left"`
	Refused     []stickIssue `json:"refused"`
	Ignored     []stickIssue `json:"ignored"`
	Inventories []string     `json:"inventories"`
	Bundles     int          `json:"stick_bundles"`
}

type stickIssue struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// usbSync runs 'ferry usb sync --json' for c on the stick, requires exit 0
// and returns the report.
func usbSync(t testing.TB, c community, stick string, flags ...string) stickReport {
	t.Helper()
	args := append([]string{"usb", "sync", "--data", c.data, "--json"}, flags...)
	var rep stickReport
	decodeJSON(t, c.name+" usb sync", mustFerry(t, append(args, stick)...), &rep)
	return rep
}

// stickContents lists the stick's FERRY/bundles: the files named as
// bundles are in their shard folder, and ferry's hidden temporary files.
// Anything else fails the test.
func stickContents(t testing.TB, stick string) (bundles, temporary []string) {
	t.Helper()
	root := filepath.Join(stick, "FERRY", "bundles")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		hexID, isBundle := strings.CutSuffix(name, ".bundle")
		_, idErr := bundle.ParseID(hexID)
		switch {
		case strings.HasPrefix(name, ".ferry-") && strings.HasSuffix(name, ".part"):
			temporary = append(temporary, p)
		case isBundle && idErr == nil && filepath.Base(filepath.Dir(p)) == hexID[:2]:
			bundles = append(bundles, p)
		default:
			t.Errorf("unexpected file on the stick: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(bundles)
	return bundles, temporary
}

// checkStickWhole fails unless every file named as a bundle on the stick
// is a whole, valid bundle with that ID, and every inventory under its
// node's name verifies: what a killed sync leaves is whole or hidden.
// It returns the bundles and the temporary files it found.
func checkStickWhole(t testing.TB, stick string) (bundles, temporary []string) {
	t.Helper()
	bundles, temporary = stickContents(t, stick)
	for _, p := range bundles {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in, err := bundle.Inspect(bytes.NewReader(b))
		if err != nil || !in.SignatureValid || !in.PayloadValid || in.ID.String()+".bundle" != filepath.Base(p) {
			t.Errorf("half a bundle under a bundle's name: %s (%d bytes): %+v %v", p, len(b), in, err)
		}
	}
	invs, _ := os.ReadDir(filepath.Join(stick, "FERRY", "inventory"))
	for _, e := range invs {
		name := e.Name()
		if strings.HasPrefix(name, ".ferry-") {
			temporary = append(temporary, name)
			continue
		}
		b, err := os.ReadFile(filepath.Join(stick, "FERRY", "inventory", name))
		if err != nil {
			t.Fatal(err)
		}
		if inv, err := usb.ParseInventory(b); err != nil || inv.Node.String()+".inv" != name {
			t.Errorf("inventory %s does not verify: %v", name, err)
		}
	}
	// Stick routes files (usb/routes.go) are written the same atomic way.
	routes, _ := os.ReadDir(filepath.Join(stick, "FERRY", "routes"))
	for _, e := range routes {
		if strings.HasPrefix(e.Name(), ".ferry-") {
			temporary = append(temporary, e.Name())
		}
	}
	return bundles, temporary
}

// nodeID reads a community's node ID.
func nodeID(t testing.TB, c community) bundle.NodeID {
	t.Helper()
	n, err := node.Open(c.data, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.ID()
}

// bundleDest reads the destination of a bundle file.
func bundleDest(t testing.TB, p string) bundle.NodeID {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	in, err := bundle.Inspect(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return bundle.NodeID(in.Header.Dest.ID)
}

// inboxCounts counts the messages a user received, by body, and the states
// of the messages the user sent, by body.
func inboxCounts(t testing.TB, c community) (in map[string]int, out map[string]string) {
	t.Helper()
	in, out = map[string]int{}, map[string]string{}
	for _, m := range readInbox(t, c, c.user) {
		if m.Direction == "in" {
			in[m.Body]++
		} else {
			out[m.Body] = m.State
		}
	}
	return in, out
}

// checkReceivedOnce fails unless c's user received each of bodies exactly
// once and nothing else.
func checkReceivedOnce(t testing.TB, c community, bodies []string) {
	t.Helper()
	in, _ := inboxCounts(t, c)
	for _, b := range bodies {
		if in[b] != 1 {
			t.Errorf("%s@%s received %q %d times, want once", c.user, c.name, b, in[b])
		}
	}
	if total := sumCounts(in); total != len(bodies) {
		t.Errorf("%s@%s received %d messages, want %d", c.user, c.name, total, len(bodies))
	}
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// mountStick mounts a file system of the given type on a new folder and
// unmounts it when the test ends. It returns an error, with why, when the
// machine does not allow it.
func mountStick(t *testing.T, fstype string, sizeMiB int) (string, error) {
	t.Helper()
	dir := t.TempDir()
	var cmd *exec.Cmd
	switch fstype {
	case "tmpfs":
		cmd = exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), "tmpfs", dir)
	case "vfat":
		mkfs, err := exec.LookPath("mkfs.vfat")
		if err != nil {
			return "", fmt.Errorf("mkfs.vfat is not installed (apt-get install dosfstools): %w", err)
		}
		img := filepath.Join(t.TempDir(), "stick.img")
		if out, err := exec.Command("dd", "if=/dev/zero", "of="+img, "bs=1M", fmt.Sprintf("count=%d", sizeMiB)).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dd: %v: %s", err, out)
		}
		if out, err := exec.Command(mkfs, "-n", "FERRY", img).CombinedOutput(); err != nil {
			return "", fmt.Errorf("mkfs.vfat: %v: %s", err, out)
		}
		cmd = exec.Command("mount", "-t", "vfat", "-o", "loop", img, dir)
	default:
		t.Fatalf("unknown file system %q", fstype)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(out))
	}
	// Registered after t.TempDir, so it runs before the folder is removed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir, nil
}

// TestStickCarriesNorthRiverHillAndBack walks one stick north → river →
// hill → river → north → river → hill, with messages between all three:
// each arrives once, each sender sees it delivered, and the stick ends
// empty. At every stop the stick is synced a second time, which must
// change nothing. The walk runs on a folder, an 8 MiB tmpfs and a 16 MiB
// FAT file system.
func TestStickCarriesNorthRiverHillAndBack(t *testing.T) {
	kinds := []struct {
		name  string
		mount func(t *testing.T) (string, error)
	}{
		{"folder", func(t *testing.T) (string, error) { return t.TempDir(), nil }},
		{"tmpfs-8MiB", func(t *testing.T) (string, error) { return mountStick(t, "tmpfs", 8) }},
		{"vfat-16MiB", func(t *testing.T) (string, error) { return mountStick(t, "vfat", 16) }},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			stick, err := k.mount(t)
			if err != nil {
				t.Skipf("cannot mount a %s stick here, so the walk runs on the folder only: %v", k.name, err)
			}
			walkStick(t, stick)
		})
	}
}

// walkStick makes three communities that trust each other, sends four
// messages among them and walks the stick between them.
func walkStick(t *testing.T, stick string) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	hill := newCommunity(t, root, "hill", "carol")
	introduce(t, north, river, hill)
	ids := map[string]bundle.NodeID{}
	for _, c := range []community{north, river, hill} {
		ids[c.name] = nodeID(t, c)
	}

	msgs := []struct {
		from, to community
		body     string
	}{
		{north, hill, "north to hill: the salt arrives with the next stick"},
		{north, river, "north to river: can you spare two oars?"},
		{hill, north, "hill to north: the goats are back, thank you"},
		{river, hill, "river to hill: the ford is passable again"},
	}
	for _, m := range msgs {
		mustFerry(t, "send", "--data", m.from.data, "--from", m.from.user, "--to", m.to.user+"@"+m.to.name, m.body)
	}
	wantIn := map[string][]string{}
	for _, m := range msgs {
		wantIn[m.to.name] = append(wantIn[m.to.name], m.body)
	}

	applied := 0
	stop := func(i int, c community) {
		t.Helper()
		rep := usbSync(t, c, stick)
		applied += rep.Messages
		if len(rep.Refused)+len(rep.Ignored)+len(rep.Left) != 0 {
			t.Errorf("stop %d (%s): refused %+v, ignored %+v, left %+v; want none", i, c.name, rep.Refused, rep.Ignored, rep.Left)
		}
		if !slices.Contains(rep.Inventories, c.name) {
			t.Errorf("stop %d (%s): the stick's inventories %v lack this node's", i, c.name, rep.Inventories)
		}
		files, tmp := checkStickWhole(t, stick)
		if len(tmp) != 0 {
			t.Errorf("stop %d (%s): temporary files left on the stick: %v", i, c.name, tmp)
		}
		if rep.Bundles != len(files) {
			t.Errorf("stop %d (%s): report says %d bundles on the stick, it holds %d", i, c.name, rep.Bundles, len(files))
		}
		for _, f := range files {
			if bundleDest(t, f) == ids[c.name] {
				t.Errorf("stop %d (%s): the stick still holds %s, addressed to the node that just took it in", i, c.name, filepath.Base(f))
			}
		}
		// The same stick, synced again at once, changes nothing.
		again := usbSync(t, c, stick)
		if again.Applied+again.Stored+again.Messages+again.Receipts+again.Exported+again.Pruned != 0 ||
			again.Duplicates != len(files) || len(again.Refused)+len(again.Ignored) != 0 {
			t.Errorf("stop %d (%s): a second sync in a row did something: %+v", i, c.name, again)
		}
		if after, _ := stickContents(t, stick); !slices.Equal(after, files) {
			t.Errorf("stop %d (%s): a second sync changed the stick from %d bundles to %d", i, c.name, len(files), len(after))
		}
		t.Logf("stop %d %-5s: in %d applied (%d messages, %d receipts), %d stored; out %d; pruned %d; stick holds %d",
			i, c.name, rep.Applied, rep.Messages, rep.Receipts, rep.Stored, rep.Exported, rep.Pruned, len(files))
	}
	walk := []community{north, river, hill, river, north}
	for i, c := range walk {
		stop(i+1, c)
	}
	for _, c := range []community{north, river, hill} {
		checkReceivedOnce(t, c, wantIn[c.name])
	}
	if applied != len(msgs) {
		t.Errorf("the syncs applied %d messages in all, want %d", applied, len(msgs))
	}
	// Hill's message is delivered once its receipt has come back: one
	// more trip river → hill.
	_, hillOut := inboxCounts(t, hill)
	if s := hillOut[msgs[2].body]; s != "carried" {
		t.Errorf("before its receipt comes back, hill's message is %q, want carried", s)
	}
	for i, c := range []community{river, hill} {
		stop(len(walk)+i+1, c)
	}
	for _, m := range msgs {
		if _, out := inboxCounts(t, m.from); out[m.body] != "delivered" {
			t.Errorf("%s@%s sees %q as %q, want delivered", m.from.user, m.from.name, m.body, out[m.body])
		}
	}
	for _, c := range []community{north, river, hill} {
		checkReceivedOnce(t, c, wantIn[c.name])
	}
	if files, _ := stickContents(t, stick); len(files) != 0 {
		t.Errorf("the stick ends holding %d bundles that every destination has received: %v", len(files), files)
	}
}

// randomText returns n bytes of printable ASCII that compress poorly.
func randomText(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-+*/()[]{}<>=_#%&@"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// sealLarge makes k bundles at src for dst, each of perBundle messages of
// 60,000 bytes that compress poorly (about 200 KB a bundle for 4), in
// process. It returns the message bodies.
func sealLarge(t *testing.T, rng *rand.Rand, src, dst community, k, perBundle int) []string {
	t.Helper()
	n, err := node.Open(src.data, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var bodies []string
	for i := range k {
		for j := range perBundle {
			body := fmt.Sprintf("bundle %d part %d: %s", i, j, randomText(rng, 60000))
			if _, err := n.Send(t.Context(), src.user, node.Address{User: dst.user, Node: dst.name}, body); err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, body)
		}
		if ids, err := n.Seal(t.Context()); err != nil || len(ids) != 1 {
			t.Fatalf("seal: %d bundles, %v; want 1", len(ids), err)
		}
	}
	return bodies
}

var usbSeed = flag.Uint64("usb.seed", 0, "seed for the USB tests' data and kill times (0: from the clock)")

// usbRand returns the random source of one test and logs its seed.
func usbRand(t *testing.T) *rand.Rand {
	seed := *usbSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (repeat: go test ./cmd/ferry -run '^%s$' -args -usb.seed=%d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// TestUSBStickFullMidExport fills a 2 MiB stick with more than fits: the
// sync ends well, says what did not fit, leaves nothing half written, and
// a bigger stick then takes the rest. Without a tmpfs it reserves all but
// about 1 MiB of a folder's file system instead.
func TestUSBStickFullMidExport(t *testing.T) {
	rng := usbRand(t)
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	const total = 8
	bodies := sealLarge(t, rng, north, river, total, 4)

	stick, err := mountStick(t, "tmpfs", 2)
	var flags []string
	if err != nil {
		t.Logf("cannot mount a 2 MiB tmpfs (%v): a folder stands in, with a reserve that leaves about 1 MiB free", err)
		stick = t.TempDir()
		var st syscall.Statfs_t
		if err := syscall.Statfs(stick, &st); err != nil {
			t.Fatal(err)
		}
		flags = []string{"--reserve", strconv.FormatInt(int64(st.Bavail)*int64(st.Bsize)-1<<20, 10)}
	}
	r := ferry(t, append(append([]string{"usb", "sync", "--data", north.data}, flags...), stick)...)
	if r.code != 0 {
		t.Fatalf("sync to a full stick: exit %d, want 0\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`(?m)^full: (\d+) bundles \(.+\) did not fit on the stick`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("sync to a full stick does not say what did not fit:\n%s", r.stdout)
	}
	notFitted, _ := strconv.Atoi(m[1])
	files, tmp := checkStickWhole(t, stick)
	t.Logf("the small stick took %d bundles; %d did not fit", len(files), notFitted)
	if len(files) == 0 || len(files) == total || len(files)+notFitted != total || len(tmp) != 0 {
		t.Errorf("small stick: %d bundles written, %d did not fit, %d temporary files; want some of %d written, the rest reported, no temporary files",
			len(files), notFitted, len(tmp), total)
	}

	// Again: nothing more fits, and the sync still ends well.
	rep := usbSync(t, north, stick, flags...)
	if rep.Exported != 0 || rep.NotFitted != notFitted || rep.OnStick != len(files) {
		t.Errorf("second sync to the full stick: %+v, want nothing exported and %d not fitted", rep, notFitted)
	}

	// A bigger stick takes everything north holds, which includes the rest.
	big := t.TempDir()
	rep = usbSync(t, north, big)
	if rep.Exported != total || rep.NotFitted != 0 {
		t.Errorf("bigger stick: %d exported, %d did not fit; want %d and 0", rep.Exported, rep.NotFitted, total)
	}
	bigFiles, _ := checkStickWhole(t, big)
	onSmall := map[string]bool{}
	for _, f := range files {
		onSmall[filepath.Base(f)] = true
	}
	rest := 0
	for _, f := range bigFiles {
		if !onSmall[filepath.Base(f)] {
			rest++
		}
	}
	if rest != notFitted {
		t.Errorf("the bigger stick holds %d of the bundles that did not fit, want %d", rest, notFitted)
	}

	// River takes in the small stick, then the big one: every message once.
	first := usbSync(t, river, stick)
	second := usbSync(t, river, big)
	if first.Applied != len(files) || second.Applied != notFitted || second.Duplicates != len(files) {
		t.Errorf("river applied %d from the small stick and %d (%d already seen) from the big one; want %d, %d (%d)",
			first.Applied, second.Applied, second.Duplicates, len(files), notFitted, len(files))
	}
	checkReceivedOnce(t, river, bodies)
}

// timeCopy times a whole sync of c with the stick, run on copies of both,
// so that the real ones keep all the work for the runs to be killed.
func timeCopy(t *testing.T, c community, stick string) time.Duration {
	t.Helper()
	scratch := t.TempDir()
	for _, d := range []string{c.data, stick} {
		if out, err := exec.Command("cp", "-a", d, scratch+"/").CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	start := time.Now()
	mustFerry(t, "usb", "sync", "--data", filepath.Join(scratch, filepath.Base(c.data)), filepath.Join(scratch, filepath.Base(stick)))
	return time.Since(start)
}

// sealRound makes, in process, one bundle at src for each of dests, of one
// to three messages each, and returns their bodies by destination.
func sealRound(t *testing.T, rng *rand.Rand, round int, src community, dests []community) map[string][]string {
	t.Helper()
	n, err := node.Open(src.data, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bodies := map[string][]string{}
	for i, d := range dests {
		for j := range 1 + rng.IntN(3) {
			body := fmt.Sprintf("round %d bundle %d message %d for %s@%s", round, i, j, d.user, d.name)
			if _, err := n.Send(t.Context(), src.user, node.Address{User: d.user, Node: d.name}, body); err != nil {
				t.Fatal(err)
			}
			bodies[d.name] = append(bodies[d.name], body)
		}
		if ids, err := n.Seal(t.Context()); err != nil || len(ids) != 1 {
			t.Fatalf("seal: %d bundles, %v; want 1", len(ids), err)
		}
	}
	return bodies
}

// TestUSBSyncSurvivesSIGKILL kills 'ferry usb sync' with SIGKILL at random
// moments while north exports to the stick and while river imports from
// it, round after round with fresh bundles. After every kill each bundle
// on the stick is whole and no message is in an inbox twice; after the
// last, whole syncs sweep the debris and every message arrives once and is
// delivered.
func TestUSBSyncSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the real binary dozens of times")
	}
	const (
		rounds        = 3
		perRound      = 30 // bundles north makes each round
		killsPerPhase = 4  // planned kills per round and phase
		minKills      = 10 // per phase, so at least 20 in all
	)
	rng := usbRand(t)
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	hill := newCommunity(t, root, "hill", "carol")
	introduce(t, north, river, hill)
	stick := filepath.Join(root, "stick")
	if err := os.Mkdir(stick, 0o755); err != nil {
		t.Fatal(err)
	}
	wantIn := map[string][]string{}
	startup := map[string]time.Duration{}
	for _, c := range []community{north, river} {
		startup[c.name] = startupTime(t, c)
	}
	t.Logf("start-up: north %v, river %v", startup[north.name], startup[river.name])

	kills := map[string]int{}
	runs := map[string]int{}
	killAt := func(phase string, c community, d time.Duration) crashRun {
		t.Helper()
		r := runKilledAfter(t, d, "usb", "sync", "--data", c.data, "--json", stick)
		runs[phase]++
		if r.killed {
			kills[phase]++
		}
		files, tmp := checkStickWhole(t, stick)
		got := 0
		if phase == "import" {
			in, _ := inboxCounts(t, river)
			for body, k := range in {
				if k != 1 {
					t.Errorf("after a kill during import: %q is in bob's inbox %d times", body, k)
				}
			}
			got = len(in)
		}
		t.Logf("%s run %2d killed at %4dms: %-5v stick: %2d bundles, %d temporary files; bob has %d messages",
			phase, runs[phase], d.Milliseconds(), r.killed, len(files), len(tmp), got)
		return r
	}
	var idleExport, idleImport time.Duration
	for round := range rounds {
		dests := make([]community, perRound)
		for i := range dests {
			dests[i] = river
			if rng.IntN(3) == 0 {
				dests[i] = hill
			}
		}
		for name, bs := range sealRound(t, rng, round, north, dests) {
			wantIn[name] = append(wantIn[name], bs...)
		}
		// Each kill lands in the work left: a whole sync of copies of the
		// node and the stick, just before, says how long that takes.
		for range killsPerPhase {
			killAt("export", north, killMoment(rng, startup[north.name], timeCopy(t, north, stick)))
		}
		usbSync(t, north, stick)
		_, out := inboxCounts(t, north)
		for body, state := range out {
			if state == "queued" {
				t.Errorf("round %d: after a whole sync, %q is still queued though its bundle is on the stick", round, body)
			}
		}
		for range killsPerPhase {
			killAt("import", river, killMoment(rng, startup[river.name], timeCopy(t, river, stick)))
		}
		if round == 0 {
			_, idleExport = timedSync(t, north, stick)
			_, idleImport = timedSync(t, river, stick)
		}
	}
	// Top up with kills during syncs that find the work done, should
	// runs have ended before their kill.
	for phase, c := range map[string]community{"export": north, "import": river} {
		idle := map[string]time.Duration{"export": idleExport, "import": idleImport}[phase]
		top := killTopUp{rng: rng, lo: startup[c.name], hi: idle}
		top.until(t, minKills, runs[phase]+6*minKills, func() int { return kills[phase] }, func() int { return runs[phase] }, func(d time.Duration) crashRun {
			return killAt(phase, c, d)
		})
	}
	t.Logf("killed %d syncs during export (of %d runs) and %d during import (of %d)", kills["export"], runs["export"], kills["import"], runs["import"])

	// Whole syncs: the debris goes, nothing is refused, every message
	// arrives once, and the receipts make every message delivered.
	_, tmp := checkStickWhole(t, stick)
	rep := usbSync(t, river, stick)
	if rep.Debris != len(tmp) {
		t.Errorf("the whole sync removed %d temporary files, the stick held %d", rep.Debris, len(tmp))
	}
	for _, c := range []community{north, river, hill, north} {
		rep := usbSync(t, c, stick)
		if len(rep.Refused)+len(rep.Ignored)+len(rep.Left) != 0 {
			t.Errorf("%s: refused %+v, ignored %+v, left %+v after the kills; want none", c.name, rep.Refused, rep.Ignored, rep.Left)
		}
	}
	if _, tmp := checkStickWhole(t, stick); len(tmp) != 0 {
		t.Errorf("temporary files left after whole syncs: %v", tmp)
	}
	if es, _ := os.ReadDir(filepath.Join(stick, "FERRY", "damaged")); len(es) != 0 {
		t.Errorf("FERRY/damaged holds %d files: a killed sync left something read as a damaged bundle", len(es))
	}
	checkReceivedOnce(t, river, wantIn[river.name])
	checkReceivedOnce(t, hill, wantIn[hill.name])
	_, out := inboxCounts(t, north)
	if len(out) != len(wantIn[river.name])+len(wantIn[hill.name]) {
		t.Errorf("alice sent %d messages, want %d", len(out), len(wantIn[river.name])+len(wantIn[hill.name]))
	}
	for body, state := range out {
		if state != "delivered" {
			t.Errorf("alice's %q is %s, want delivered", body, state)
		}
	}
}

// killMoment returns a moment in [from, to), or in [0, to) when from is
// not before to.
func killMoment(rng *rand.Rand, from, to time.Duration) time.Duration {
	if from >= to {
		from = 0
	}
	return from + time.Duration(rng.Int64N(int64(max(to-from, time.Millisecond))))
}

// startupTime is how long the binary takes to start and open c's node:
// kills before then would land before any sync work.
func startupTime(t *testing.T, c community) time.Duration {
	t.Helper()
	start := time.Now()
	mustFerry(t, "inbox", "--data", c.data, "--user", c.user)
	return time.Since(start)
}

// timedSync runs a whole sync and says how long it took.
func timedSync(t *testing.T, c community, stick string) (stickReport, time.Duration) {
	t.Helper()
	start := time.Now()
	rep := usbSync(t, c, stick)
	return rep, time.Since(start)
}

// TestUSBSyncReportsRefusals puts on one stick a truncated bundle, a
// person's note and an inventory signed by a key nobody trusts: the sync
// ends well and its JSON report names each with its reason.
func TestUSBSyncReportsRefusals(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	stick := t.TempDir()
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "first")
	usbSync(t, north, stick)
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "second")
	usbSync(t, north, stick)
	files, _ := stickContents(t, stick)
	if len(files) != 2 {
		t.Fatalf("north put %d bundles on the stick, want 2", len(files))
	}
	// Damage one: which one does not matter; the other arrives.
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	note := filepath.Join(stick, "FERRY", "bundles", "notes.txt")
	if err := os.WriteFile(note, []byte("the stick belongs to anna\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var forger bundle.NodeID
	copy(forger[:], key.Public().(ed25519.PublicKey))
	inv := &usb.Inventory{Node: forger, Name: "forger", At: time.Now(), Wants: []bundle.NodeID{forger}}
	ib, err := inv.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(stick, "FERRY", "inventory", forger.String()+".inv")
	if err := os.WriteFile(forged, ib, 0o644); err != nil {
		t.Fatal(err)
	}

	r := ferry(t, "usb", "sync", "--data", river.data, "--json", stick)
	if r.code != 0 {
		t.Fatalf("sync: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep stickReport
	decodeJSON(t, "usb sync", r.stdout, &rep)
	rel := func(p string) string { s, _ := filepath.Rel(stick, p); return s }
	want := []struct {
		what   string
		issues []stickIssue
		file   string
		reason string
	}{
		{"refused", rep.Refused, rel(files[0]), "truncated"},
		{"left", rep.Left, rel(note), "not a ferry bundle"},
		{"ignored", rep.Ignored, rel(forged), "unknown node"},
	}
	for _, w := range want {
		if len(w.issues) != 1 || w.issues[0].File != w.file || !strings.Contains(w.issues[0].Reason, w.reason) {
			t.Errorf("%s: %+v, want one entry for %s with a reason saying %q", w.what, w.issues, w.file, w.reason)
		}
	}
	if rep.Applied != 1 {
		t.Errorf("river applied %d bundles, want the undamaged one", rep.Applied)
	}
	if _, err := os.Stat(note); err != nil {
		t.Errorf("the person's note is gone: %v", err)
	}
	if _, err := os.Stat(forged); err != nil {
		t.Errorf("the forged inventory is gone: %v", err)
	}
	in, _ := inboxCounts(t, river)
	if sumCounts(in) != 1 || (in["first"] != 1 && in["second"] != 1) {
		t.Errorf("bob received %v, want the undamaged message once", in)
	}
}
