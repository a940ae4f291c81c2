package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"flag"
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

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"ferry/bundle"
	"ferry/node"
)

// The SIGKILL tests kill the real binary at random moments and check that
// what survives is whole: every message once, an intact database, no half
// bundle under a bundle's name. The kill times come from a seeded source;
// a failing run logs its seed, and -crash.seed repeats it.

var crashSeed = flag.Uint64("crash.seed", 0, "seed for the SIGKILL tests' plans and kill times (0: from the clock)")

// crashRand returns the random source of one test and logs its seed.
func crashRand(t *testing.T) *rand.Rand {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (repeat: go test ./cmd/ferry -run '^%s$' -args -crash.seed=%d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// crashRun is one run of the binary that may have been killed.
type crashRun struct {
	stdout string
	killed bool
	took   time.Duration
}

// runKilledAfter runs the binary and sends it SIGKILL after d, unless it
// exited first, in which case it must have exited 0.
func runKilledAfter(t *testing.T, d time.Duration, args ...string) crashRun {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_DATA=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	kill := time.AfterFunc(d, func() { cmd.Process.Signal(syscall.SIGKILL) })
	err := cmd.Wait()
	kill.Stop()
	r := crashRun{stdout: out.String(), took: time.Since(start)}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		r.killed = true
		return r
	}
	if err != nil {
		t.Fatalf("ferry %s: %v (not killed)\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, r.stdout, errb.String())
	}
	return r
}

// timedFerry runs the binary to the end, requires exit 0 and says how long
// it took.
func timedFerry(t *testing.T, args ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	out := mustFerry(t, args...)
	return out, time.Since(start)
}

// killTimes returns k moments spread uniformly over [0, d), in order, so
// that successive kills land further and further into the work.
func killTimes(rng *rand.Rand, k int, d time.Duration) []time.Duration {
	ts := make([]time.Duration, k)
	for i := range ts {
		ts[i] = time.Duration(rng.Int64N(int64(max(d, time.Millisecond))))
	}
	slices.Sort(ts)
	return ts
}

// sealed is what sealBundles made at the source node.
type sealed struct {
	ids    map[string][]bundle.ID // by destination node
	bodies map[string][]string    // by destination node
}

// sealBundles makes one bundle at src for each entry of dests: it sends 1
// to 3 messages from src's user to that community's user, then seals, which
// packs them into one bundle. It runs in process: a thousand runs of the
// binary would take minutes.
func sealBundles(t *testing.T, rng *rand.Rand, src community, dests []community) sealed {
	t.Helper()
	ctx := t.Context()
	n, err := node.Open(src.data, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	s := sealed{ids: map[string][]bundle.ID{}, bodies: map[string][]string{}}
	for i, d := range dests {
		to := node.Address{User: d.user, Node: d.name}
		for j := range 1 + rng.IntN(3) {
			body := fmt.Sprintf("bundle %d message %d for %s", i, j, to)
			if _, err := n.Send(ctx, src.user, to, body); err != nil {
				t.Fatal(err)
			}
			s.bodies[d.name] = append(s.bodies[d.name], body)
		}
		ids, err := n.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 {
			t.Fatalf("round %d sealed %d bundles, want 1", i, len(ids))
		}
		s.ids[d.name] = append(s.ids[d.name], ids[0])
	}
	return s
}

// bundleDir lists a folder of exported bundles: the files named as
// bundles, and ferry's temporary files. Anything else fails the test.
func bundleDir(t *testing.T, dir string) (bundles, temporary []string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		name := e.Name()
		switch hexID, ok := strings.CutSuffix(name, ".bundle"); {
		case node.IsTemporary(name):
			temporary = append(temporary, name)
		case ok && isBundleID(hexID):
			bundles = append(bundles, name)
		default:
			t.Errorf("%s: unexpected file %q: neither a bundle's name nor a temporary one", dir, name)
		}
	}
	return bundles, temporary
}

func isBundleID(s string) bool {
	_, err := bundle.ParseID(s)
	return err == nil
}

// bundleNames returns the file names that bundles with these IDs have.
func bundleNames(ids ...[]bundle.ID) []string {
	var names []string
	for _, l := range ids {
		for _, id := range l {
			names = append(names, id.String()+".bundle")
		}
	}
	slices.Sort(names)
	return names
}

// importJSON imports paths into c and returns the report; the import must
// exit 0 (nothing refused).
func importJSON(t *testing.T, c community, paths ...string) []importResult {
	t.Helper()
	out := mustFerry(t, append([]string{"import", "--data", c.data, "--json"}, paths...)...)
	var rs []importResult
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("import --json: %v\n%s", err, out)
	}
	return rs
}

// checkInboxOnce fails unless c's user received each of want exactly once
// and nothing else.
func checkInboxOnce(t *testing.T, c community, want []string) {
	t.Helper()
	out := mustFerry(t, "inbox", "--data", c.data, "--user", c.user, "--json")
	var msgs []node.InboxMessage
	if err := json.Unmarshal([]byte(out), &msgs); err != nil {
		t.Fatalf("inbox --json: %v", err)
	}
	got := map[string]int{}
	received := 0
	for _, m := range msgs {
		if m.Direction == "in" {
			got[m.Body]++
			received++
		}
	}
	for _, b := range want {
		if got[b] != 1 {
			t.Errorf("%s@%s: message %q present %d times, want once", c.user, c.name, b, got[b])
		}
	}
	if received != len(want) {
		t.Errorf("%s@%s: %d messages received, want %d", c.user, c.name, received, len(want))
	}
}

// checkStore opens a node's database read-only and checks its integrity
// and how many bundles it holds in each state.
func checkStore(t *testing.T, data string, wantStates map[string]int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "ferry.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `PRAGMA integrity_check`)
	if err != nil {
		t.Fatal(err)
	}
	var report []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		report = append(report, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(report, []string{"ok"}) {
		t.Errorf("integrity_check: %q, want ok", report)
	}
	for state, want := range wantStates {
		var got int
		if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM bundles WHERE state = ?`, state).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%d bundles in state %q, want %d", got, state, want)
		}
	}
}

// spoolFiles lists the files in a node's spool: bundles (by name) and the
// debris in spool/tmp, which is never a bundle.
func spoolFiles(t *testing.T, data string) (bundles, debris []string) {
	t.Helper()
	spool := filepath.Join(data, "spool")
	err := filepath.WalkDir(spool, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return nil
		case filepath.Dir(p) == filepath.Join(spool, "tmp"):
			debris = append(debris, p)
		default:
			bundles = append(bundles, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(bundles)
	return bundles, debris
}

// moveFiles moves the named files from one folder to another.
func moveFiles(t *testing.T, from, to string, names []string) {
	t.Helper()
	for _, name := range names {
		if err := os.Rename(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// takenIn counts the files an import run reported as applied, stored or
// duplicate, adding them to done; a killed run reports what it finished.
func takenIn(out string, done map[string]bool) (applied, stored int) {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "applied":
			applied++
		case "stored":
			stored++
		case "duplicate":
		default:
			continue
		}
		done[f[1]] = true
	}
	return applied, stored
}

func TestImportSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the real binary dozens of times")
	}
	const (
		total       = 1000
		calibration = 100 // bundles imported whole first, to time an import
		batches     = 3   // the rest arrives in batches, each killed into
		killsEach   = 8
		minKills    = 20
	)
	rng := crashRand(t)
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	hill := newCommunity(t, root, "hill", "carol")
	introduce(t, north, river, hill)

	// One bundle in five is for hill, which river carries on.
	dests := make([]community, total)
	for i := range dests {
		dests[i] = river
		if rng.IntN(5) == 0 {
			dests[i] = hill
		}
	}
	start := time.Now()
	s := sealBundles(t, rng, north, dests)
	staged := filepath.Join(root, "staged")
	mustFerry(t, "export", "--data", north.data, "--to", river.name, "--out", staged)
	files, tmp := bundleDir(t, staged)
	if want := bundleNames(s.ids[river.name], s.ids[hill.name]); !slices.Equal(files, want) || len(tmp) > 0 {
		t.Fatalf("export wrote %d bundles and %d temporary files, want %d bundles", len(files), len(tmp), len(want))
	}
	t.Logf("made %d bundles (%d for river with %d messages, %d for hill with %d) in %v",
		len(files), len(s.ids[river.name]), len(s.bodies[river.name]), len(s.ids[hill.name]), len(s.bodies[hill.name]),
		time.Since(start).Round(time.Millisecond))

	// The import reads from in/; bundles move there from staged/ a batch
	// at a time, so that each batch's kills land in fresh work.
	in := filepath.Join(root, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	importArgs := []string{"import", "--data", river.data, in}

	// Calibrate: a run that finds nothing, one that takes in the first
	// batch, one that finds it all duplicate.
	_, startup := timedFerry(t, importArgs...)
	moveFiles(t, staged, in, files[:calibration])
	_, fresh := timedFerry(t, importArgs...)
	_, again := timedFerry(t, importArgs...)
	perNew := (fresh - startup) / calibration
	perSeen := max(again-startup, 0) / calibration
	t.Logf("calibration: start %v, %v per new bundle, %v per duplicate", startup, perNew, perSeen)

	kills, runs := 0, 0
	done := map[string]bool{}
	inDir := calibration
	rest := files[calibration:]
	for b := range batches {
		batch := rest[b*len(rest)/batches : (b+1)*len(rest)/batches]
		moveFiles(t, staged, in, batch)
		// How long a run takes to do this whole batch, duplicates first.
		whole := startup + time.Duration(inDir)*perSeen + time.Duration(len(batch))*perNew
		inDir += len(batch)
		for _, d := range killTimes(rng, killsEach, whole) {
			r := runKilledAfter(t, d, importArgs...)
			runs++
			applied, stored := takenIn(r.stdout, done)
			if r.killed {
				kills++
				t.Logf("kill %2d at %4dms of ~%dms: %3d applied, %3d stored before it", kills, d.Milliseconds(), whole.Milliseconds(), applied, stored)
			} else {
				t.Logf("run finished before its kill at %dms: %d applied, %d stored", d.Milliseconds(), applied, stored)
			}
		}
		if rng.IntN(2) == 0 {
			out, took := timedFerry(t, importArgs...)
			applied, stored := takenIn(out, done)
			t.Logf("complete import after batch %d in %v: %d applied, %d stored", b+1, took.Round(time.Millisecond), applied, stored)
		}
	}
	// Top up with kills among the duplicates should too many runs have
	// finished before their kill.
	for runs < 4*minKills && kills < minKills {
		d := time.Duration(rng.Int64N(int64(startup + time.Duration(inDir)*perSeen)))
		if runKilledAfter(t, d, importArgs...).killed {
			kills++
		}
		runs++
	}
	if kills < minKills {
		t.Fatalf("only %d of %d runs were killed before they finished, want %d", kills, runs, minKills)
	}
	t.Logf("%d runs, %d killed with SIGKILL", runs, kills)

	// Every spooled bundle is whole, and the debris of killed runs is left
	// aside. Plant some more, to be sure the checks below meet some: half
	// of a hill bundle, named as the spool names files it is writing.
	whole, err := os.ReadFile(filepath.Join(in, s.ids[hill.name][0].String()+".bundle"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(river.data, "spool", "tmp", "0123456789abcdef.part"), whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}

	mustFerry(t, importArgs...)
	rs := importJSON(t, river, in)
	if len(rs) != total {
		t.Errorf("second full import reported %d files, want %d", len(rs), total)
	}
	for _, r := range rs {
		if r.Status != "duplicate" {
			t.Errorf("second full import: %s %s, want duplicate", r.File, r.Status)
		}
	}

	checkStore(t, river.data, map[string]int{
		"carry":   len(s.ids[hill.name]),
		"applied": len(s.ids[river.name]),
	})
	checkInboxOnce(t, river, s.bodies[river.name])

	spooled, debris := spoolFiles(t, river.data)
	t.Logf("river's spool: %d bundles, %d files of debris in spool/tmp", len(spooled), len(debris))
	if want := bundleNames(s.ids[hill.name]); !slices.Equal(spooled, want) {
		t.Errorf("river's spool holds %d bundles, want the %d for hill", len(spooled), len(want))
	}
	// Importing the spool itself finds each hill bundle once, as a
	// duplicate, and nothing in spool/tmp.
	rs = importJSON(t, river, filepath.Join(river.data, "spool"))
	if len(rs) != len(s.ids[hill.name]) {
		t.Errorf("importing river's spool found %d files, want %d", len(rs), len(s.ids[hill.name]))
	}
	for _, r := range rs {
		if r.Status != "duplicate" || strings.Contains(r.File, string(filepath.Separator)+"tmp"+string(filepath.Separator)) {
			t.Errorf("importing river's spool: %s %s, want a duplicate outside tmp/", r.File, r.Status)
		}
	}

	// River hands hill its bundles; each of hill's messages arrives once.
	toHill := filepath.Join(root, "to-hill")
	mustFerry(t, "export", "--data", river.data, "--to", hill.name, "--out", toHill)
	importJSON(t, hill, toHill)
	checkInboxOnce(t, hill, s.bodies[hill.name])
}

func TestExportSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the real binary dozens of times")
	}
	const (
		total    = 150
		minKills = 10
	)
	rng := crashRand(t)
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	dests := make([]community, total)
	for i := range dests {
		dests[i] = river
	}
	s := sealBundles(t, rng, north, dests)
	want := bundleNames(s.ids[river.name])

	// Calibrate: a whole export, and one that finds every file there.
	calib := filepath.Join(root, "calib")
	_, full := timedFerry(t, "export", "--data", north.data, "--to", river.name, "--out", calib)
	_, idle := timedFerry(t, "export", "--data", north.data, "--to", river.name, "--out", calib)
	t.Logf("calibration: whole export %v, export with nothing to write %v", full, idle)

	out := filepath.Join(root, "out")
	exportArgs := []string{"export", "--data", north.data, "--to", river.name, "--out", out}
	kills, runs, sawPartial := 0, 0, 0
	check := func() {
		// What a killed export leaves: whole bundles under their names,
		// and temporary files that import passes over.
		if _, err := os.Stat(out); err != nil {
			return // killed before it made the folder
		}
		visible, temporary := bundleDir(t, out)
		if len(temporary) > 0 {
			sawPartial++
		}
		rs := importJSON(t, river, out)
		if len(rs) != len(visible) {
			t.Errorf("import found %d files in %s, want the %d bundles", len(rs), out, len(visible))
		}
		for _, r := range rs {
			if node.IsTemporary(filepath.Base(r.File)) || (r.Status != "applied" && r.Status != "duplicate") {
				t.Errorf("import: %s %s %s", r.File, r.Status, r.Reason)
			}
		}
	}
	delays := killTimes(rng, minKills+2, full)
	for i := 0; kills < minKills && runs < 4*minKills; i++ {
		var d time.Duration
		if i < len(delays) {
			d = delays[i]
		} else {
			d = time.Duration(rng.Int64N(int64(idle)))
		}
		r := runKilledAfter(t, d, exportArgs...)
		runs++
		if r.killed {
			kills++
		}
		visible, temporary := 0, 0
		if _, err := os.Stat(out); err == nil {
			v, tmp := bundleDir(t, out)
			visible, temporary = len(v), len(tmp)
		}
		t.Logf("run %2d at %4dms (killed %v): %3d bundles, %d temporary files", runs, d.Milliseconds(), r.killed, visible, temporary)
		check()
	}
	if kills < minKills {
		t.Fatalf("only %d of %d runs were killed before they finished, want %d", kills, runs, minKills)
	}
	t.Logf("%d runs, %d killed; %d left a temporary file behind", runs, kills, sawPartial)

	mustFerry(t, exportArgs...)
	visible, temporary := bundleDir(t, out)
	if !slices.Equal(visible, want) {
		t.Errorf("after a whole export: %d bundles, want %d", len(visible), len(want))
	}
	t.Logf("after a whole export: %d bundles, %d temporary files", len(visible), len(temporary))
	for _, name := range visible {
		var in inspection
		if err := json.Unmarshal([]byte(mustFerry(t, "bundle", "inspect", "--json", filepath.Join(out, name))), &in); err != nil {
			t.Fatal(err)
		}
		if !in.SignatureValid || !in.PayloadValid || in.ID+".bundle" != name {
			t.Errorf("%s: id %s, signature valid %v, payload valid %v: %s", name, in.ID, in.SignatureValid, in.PayloadValid, in.Problem)
		}
	}
	check()
	checkInboxOnce(t, river, s.bodies[river.name])
}
