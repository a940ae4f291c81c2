package main

import (
	"bytes"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
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
	took   time.Duration // from start to exit
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

// killTopUp makes extra killed runs until a test has the kills it needs:
// the planned kills, aimed from a calibration, miss when runs end sooner
// than it said (the machine's load changes, the store got quicker). Each
// kill lands at a random moment in [lo, hi); a run that ends before its
// kill shows how quick the command can be, and hi drops to a little
// under its time, so that the next kills land while it works.
type killTopUp struct {
	rng    *rand.Rand
	lo, hi time.Duration
}

// until runs run (which makes one run killed after the given delay and
// checks what it left) until kills() reaches want, or fails the test
// once runs() reaches limit without.
func (k *killTopUp) until(t *testing.T, want, limit int, kills, runs func() int, run func(time.Duration) crashRun) {
	t.Helper()
	for kills() < want && runs() < limit {
		lo, hi := k.lo, max(k.hi, time.Millisecond)
		if lo >= hi/2 {
			lo = hi / 4 // past the start-up, as far as a quick run allows
		}
		r := run(lo + time.Duration(k.rng.Int64N(int64(hi-lo))))
		if !r.killed {
			k.hi = min(k.hi, r.took*9/10)
		}
	}
	if kills() < want {
		t.Fatalf("only %d of %d runs were killed before they ended, want %d kills", kills(), runs(), want)
	}
}

// timedFerry runs the binary to the end, requires exit 0 and says how long
// it took.
func timedFerry(t *testing.T, args ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	out := mustFerry(t, args...)
	return out, time.Since(start)
}

// quickest runs the binary three times and returns the shortest time: on
// a busy machine a run is only ever slower than it needs to be.
func quickest(t *testing.T, args ...string) time.Duration {
	t.Helper()
	best := time.Duration(math.MaxInt64)
	for range 3 {
		_, took := timedFerry(t, args...)
		best = min(best, took)
	}
	return best
}

// killPoints returns k points of a job of n units (bundles), uniformly
// at random and in order: where successive kills should land.
func killPoints(rng *rand.Rand, k, n int) []int {
	ps := make([]int, k)
	for i := range ps {
		ps[i] = rng.IntN(max(n, 1))
	}
	slices.Sort(ps)
	return ps
}

// pace estimates how long a run takes to reach a point of its job: a
// fixed cost (starting, skipping what earlier runs did), then a cost per
// new unit, which it relearns from each killed run, since a busy machine
// does not keep to its calibration.
type pace struct {
	rng *rand.Rand
	per time.Duration // one new unit
}

// delay returns when to kill a run that must first spend fixed and then
// do units more, at a random moment within the last of them.
func (p *pace) delay(fixed time.Duration, units int) time.Duration {
	return fixed + time.Duration(max(units, 0))*p.per + time.Duration(p.rng.Int64N(int64(max(p.per, 1))))
}

// learn takes in that a run spent this long past its fixed cost doing
// units new units.
func (p *pace) learn(spent time.Duration, units int) {
	if spent > 0 && units > 0 {
		p.per = (p.per + spent/time.Duration(units)) / 2
	}
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

// writeBundles writes into dir one bundle from src for each entry of
// dests, of 1 to 3 messages from src's user to that community's user,
// sealed as src would seal them. It writes with the bundle package rather
// than through src's store, where each message and each bundle costs
// fsyncs (21 s for a thousand bundles on a busy two-core machine, against
// 3 to 6 s here): only the files matter to the importer.
func writeBundles(t *testing.T, rng *rand.Rand, src community, dests []community, dir string) sealed {
	t.Helper()
	n, err := node.Open(src.data, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, self := n.Identity().Sign, n.ID()
	type peer struct {
		id   bundle.NodeID
		rcpt *age.X25519Recipient
	}
	peers := map[string]peer{}
	for _, d := range dests {
		if _, ok := peers[d.name]; ok {
			continue
		}
		p, err := n.Peer(t.Context(), d.name)
		if err != nil {
			t.Fatal(err)
		}
		rcpt, err := age.ParseX25519Recipient(p.Recipient)
		if err != nil {
			t.Fatal(err)
		}
		peers[d.name] = peer{p.ID, rcpt}
	}
	n.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	s := sealed{ids: map[string][]bundle.ID{}, bodies: map[string][]string{}}
	now := time.Now()
	seq := uint64(0)
	for i, d := range dests {
		h := bundle.Header{
			Kind:     bundle.KindMessages,
			Priority: node.PriorityMessages,
			Source:   self,
			Dest:     bundle.ToNode(peers[d.name].id),
			Seq:      uint64(i + 1),
			Created:  now,
			Expires:  now.Add(node.DefaultMessageTTL),
		}
		var msgs []bundle.Message
		for j := range 1 + rng.IntN(3) {
			seq++
			m := bundle.Message{Seq: seq, Created: now, From: src.user, To: d.user,
				Body: fmt.Sprintf("bundle %d message %d for %s@%s", i, j, d.user, d.name)}
			msgs = append(msgs, m)
			s.bodies[d.name] = append(s.bodies[d.name], m.Body)
		}
		id := writeSealed(t, filepath.Join(dir, fmt.Sprintf(".%d.part", i)), h, key, peers[d.name].rcpt, msgs)
		s.ids[d.name] = append(s.ids[d.name], id)
	}
	return s
}

// writeSealed writes one bundle of messages at tmp and renames it to its
// ID in the same folder.
func writeSealed(t *testing.T, tmp string, h bundle.Header, key ed25519.PrivateKey, to age.Recipient, msgs []bundle.Message) bundle.ID {
	t.Helper()
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := bundle.NewWriter(f, h, key, to)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for _, m := range msgs {
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteRecord(bundle.RecordMessage, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(filepath.Dir(tmp), w.ID().String()+".bundle")); err != nil {
		t.Fatal(err)
	}
	return w.ID()
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
func bundleNames(ids []bundle.ID) []string {
	var names []string
	for _, id := range ids {
		names = append(names, id.String()+".bundle")
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
// duplicate, adding their names to done; a killed run reports nothing.
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
		done[filepath.Base(f[1])] = true
	}
	return applied, stored
}

// crashImporter imports one folder into a node again and again, killing
// most runs with SIGKILL.
type crashImporter struct {
	t    *testing.T
	rng  *rand.Rand
	args []string
	done map[string]bool // names of the files that some run took in

	// Timings: a run that finds nothing to do, and on top the cost of
	// each duplicate and each new bundle.
	startup, perSeen time.Duration
	pace             pace

	runs, kills int
}

// calibrate times runs of the empty folder, a run that takes in the files
// that first moves there, and a run that finds them all duplicate.
func (c *crashImporter) calibrate(first func() int) {
	c.startup = quickest(c.t, c.args...)
	n := first()
	fresh := c.complete()
	again := c.complete()
	c.pace = pace{rng: c.rng, per: max(fresh-c.startup, 0) / time.Duration(n)}
	c.perSeen = max(again-c.startup, 0) / time.Duration(n)
	c.t.Logf("calibration: a run costs %v, a new bundle %v, a duplicate %v", c.startup, c.pace.per, c.perSeen)
}

// complete runs an import to the end and says how long it took.
func (c *crashImporter) complete() time.Duration {
	out, took := timedFerry(c.t, c.args...)
	takenIn(out, c.done)
	return took
}

// killThrough makes k runs whose kills land at random points of taking
// in the batch of files now in the folder. Each run first skips what
// earlier runs took in, then is killed as it should reach the next point.
// Import reports its files only once it has been through them all, so a
// killed run's progress does not show: it is reckoned in time instead, as
// the calibrated pace for the time the run had past its fixed cost. Once
// a run ends before its kill, the batch is in and later kills would find
// no fresh work: the batch's kills stop there (the test tops up its kills
// later).
func (c *crashImporter) killThrough(batch []string, k int) {
	left := len(batch) - countDone(c.done, batch)
	var progress float64 // bundles of the batch that killed runs got through
	for _, at := range killPoints(c.rng, k, left) {
		fixed := c.startup + time.Duration(len(c.done))*c.perSeen
		d := c.pace.delay(fixed, at-int(progress))
		r, _ := c.killAfter(d)
		if !r.killed {
			return
		}
		if c.pace.per > 0 {
			progress += float64(d-fixed) / float64(c.pace.per)
		}
	}
}

// countDone counts the files of batch that some run took in.
func countDone(done map[string]bool, batch []string) int {
	n := 0
	for _, f := range batch {
		if done[f] {
			n++
		}
	}
	return n
}

// killAfter runs an import and kills it after d, unless it ends first.
// It returns the run and how many new bundles it took in.
func (c *crashImporter) killAfter(d time.Duration) (r crashRun, taken int) {
	r = runKilledAfter(c.t, d, c.args...)
	c.runs++
	applied, stored := takenIn(r.stdout, c.done)
	what := "finished before its kill"
	if r.killed {
		c.kills++
		what = fmt.Sprintf("kill %2d", c.kills)
	}
	c.t.Logf("%-24s at %4dms: %3d applied, %3d stored before", what, d.Milliseconds(), applied, stored)
	return r, applied + stored
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

	// About one bundle in five is for hill, which river carries on.
	dests := make([]community, total)
	for i := range dests {
		dests[i] = river
		if rng.IntN(5) == 0 {
			dests[i] = hill
		}
	}
	start := time.Now()
	staged := filepath.Join(root, "staged")
	s := writeBundles(t, rng, north, dests, staged)
	files, _ := bundleDir(t, staged)
	want := append(bundleNames(s.ids[river.name]), bundleNames(s.ids[hill.name])...)
	if slices.Sort(want); !slices.Equal(files, want) {
		t.Fatalf("wrote %d bundle files, want %d", len(files), len(want))
	}
	t.Logf("wrote %d bundles (%d for river with %d messages, %d for hill with %d) in %v",
		len(files), len(s.ids[river.name]), len(s.bodies[river.name]), len(s.ids[hill.name]), len(s.bodies[hill.name]),
		time.Since(start).Round(time.Millisecond))

	// The import reads in/; bundles move there from staged/ a batch at a
	// time, so that each batch's kills land in fresh work.
	in := filepath.Join(root, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	c := &crashImporter{t: t, rng: rng, args: []string{"import", "--data", river.data, in}, done: map[string]bool{}}
	c.calibrate(func() int {
		moveFiles(t, staged, in, files[:calibration])
		return calibration
	})
	rest := files[calibration:]
	for b := range batches {
		batch := rest[b*len(rest)/batches : (b+1)*len(rest)/batches]
		moveFiles(t, staged, in, batch)
		c.killThrough(batch, killsEach)
		if rng.IntN(2) == 0 {
			t.Logf("complete import after batch %d: %v", b+1, c.complete().Round(time.Millisecond))
		}
	}
	// Should too many runs have ended before their kill, kill more among
	// the duplicates.
	top := killTopUp{rng: rng, lo: c.startup / 2, hi: c.startup + total*c.perSeen}
	top.until(t, minKills, c.runs+6*minKills, func() int { return c.kills }, func() int { return c.runs }, func(d time.Duration) crashRun {
		r, _ := c.killAfter(d)
		return r
	})
	t.Logf("%d runs, %d killed with SIGKILL", c.runs, c.kills)

	// Debris in spool/tmp is allowed but never a bundle. Plant some, so
	// that the checks below meet it even if no kill left any: half of a
	// hill bundle, named as the spool names the files it is writing.
	half, err := os.ReadFile(filepath.Join(in, s.ids[hill.name][0].String()+".bundle"))
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(river.data, "spool", "tmp", "0123456789abcdef.part")
	if err := os.WriteFile(planted, half[:len(half)/2], 0o600); err != nil {
		t.Fatal(err)
	}

	mustFerry(t, c.args...)
	rs := importJSON(t, river, in)
	if len(rs) != total {
		t.Errorf("second whole import reported %d files, want %d", len(rs), total)
	}
	for _, r := range rs {
		if r.Status != "duplicate" {
			t.Errorf("second whole import: %s %s, want duplicate", r.File, r.Status)
		}
	}
	checkStore(t, river.data, map[string]int{
		"carry":   len(s.ids[hill.name]),
		"applied": len(s.ids[river.name]),
	})
	checkInboxOnce(t, river, s.bodies[river.name])
	checkSpool(t, river, bundleNames(s.ids[hill.name]))

	// River hands hill its bundles; each of hill's messages arrives once.
	toHill := filepath.Join(root, "to-hill")
	mustFerry(t, "export", "--data", river.data, "--to", hill.name, "--out", toHill)
	importJSON(t, hill, toHill)
	checkInboxOnce(t, hill, s.bodies[hill.name])
}

// checkSpool checks that c's spool holds exactly the bundles named want,
// whatever debris spool/tmp holds, and that importing the spool itself
// finds each of them once, as a duplicate, and nothing in spool/tmp.
func checkSpool(t *testing.T, c community, want []string) {
	t.Helper()
	spooled, debris := spoolFiles(t, c.data)
	t.Logf("%s's spool: %d bundles, %d files of debris in spool/tmp", c.name, len(spooled), len(debris))
	if !slices.Equal(spooled, want) {
		t.Errorf("%s's spool holds %d bundles, want the %d it carries", c.name, len(spooled), len(want))
	}
	spool := filepath.Join(c.data, "spool")
	rs := importJSON(t, c, spool)
	if len(rs) != len(want) {
		t.Errorf("importing %s's spool found %d files, want %d", c.name, len(rs), len(want))
	}
	for _, r := range rs {
		rel, err := filepath.Rel(spool, r.File)
		if err != nil || r.Status != "duplicate" || strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) {
			t.Errorf("importing %s's spool: %s %s, want a duplicate outside tmp/", c.name, r.File, r.Status)
		}
	}
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
	start := time.Now()
	s := sealBundles(t, rng, north, dests)
	want := bundleNames(s.ids[river.name])
	t.Logf("sealed %d bundles of %d messages at north in %v", total, len(s.bodies[river.name]), time.Since(start).Round(time.Millisecond))

	// Calibrate: the quicker of two whole exports, and exports that find
	// every file there already.
	exportTo := func(dir string) []string {
		return []string{"export", "--data", north.data, "--to", river.name, "--out", dir}
	}
	_, full := timedFerry(t, exportTo(filepath.Join(root, "calib1"))...)
	_, full2 := timedFerry(t, exportTo(filepath.Join(root, "calib2"))...)
	idle := quickest(t, exportTo(filepath.Join(root, "calib1"))...)
	full = min(full, full2)
	t.Logf("calibration: whole export %v, export with nothing to write %v", full, idle)

	// Kill runs at random points of the export: each run finds what
	// earlier runs wrote, then is killed as it should reach the next point.
	out := filepath.Join(root, "out")
	p := pace{rng: rng, per: max(full-idle, 0) / total}
	kills, runs, sawTemporary, visible := 0, 0, 0, 0
	for _, at := range killPoints(rng, minKills+2, total) {
		d := p.delay(idle, at-visible)
		r := runKilledAfter(t, d, exportTo(out)...)
		runs++
		if r.killed {
			kills++
		}
		before := visible
		var temporary int
		visible, temporary = checkExportDir(t, river, out)
		if temporary > 0 {
			sawTemporary++
		}
		if r.killed {
			p.learn(d-idle, visible-before)
		}
		t.Logf("run %2d killed %-5v at %4dms: %3d bundles, %d temporary files", runs, r.killed, d.Milliseconds(), visible, temporary)
	}
	// Should too many runs have ended before their kill, kill more.
	top := killTopUp{rng: rng, lo: idle / 4, hi: idle}
	top.until(t, minKills, runs+6*minKills, func() int { return kills }, func() int { return runs }, func(d time.Duration) crashRun {
		r := runKilledAfter(t, d, exportTo(out)...)
		runs++
		if r.killed {
			kills++
		}
		checkExportDir(t, river, out)
		return r
	})
	t.Logf("%d runs, %d killed; %d times a temporary file was left for import to pass over", runs, kills, sawTemporary)

	mustFerry(t, exportTo(out)...)
	bundles, temporary := bundleDir(t, out)
	if !slices.Equal(bundles, want) {
		t.Errorf("after a whole export: %d bundles, want %d", len(bundles), len(want))
	}
	t.Logf("after a whole export: %d bundles, %d temporary files", len(bundles), len(temporary))
	start = time.Now()
	inspectAll(t, out, bundles)
	t.Logf("inspected them in %v", time.Since(start).Round(time.Millisecond))
	checkExportDir(t, river, out)
	checkInboxOnce(t, river, s.bodies[river.name])
}

// checkExportDir checks what an export, perhaps killed, left in dir: whole
// bundles under their names, which import takes in without refusing any,
// and temporary files, which import passes over. It imports into c.
func checkExportDir(t *testing.T, c community, dir string) (visible, temporary int) {
	t.Helper()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, 0 // killed before it made the folder
	}
	bundles, tmp := bundleDir(t, dir)
	rs := importJSON(t, c, dir)
	if len(rs) != len(bundles) {
		t.Errorf("import found %d files in %s, want its %d bundles", len(rs), dir, len(bundles))
	}
	for _, r := range rs {
		if node.IsTemporary(filepath.Base(r.File)) || (r.Status != "applied" && r.Status != "duplicate") {
			t.Errorf("import %s: %s %s", r.File, r.Status, r.Reason)
		}
	}
	return len(bundles), len(tmp)
}

// inspectAll runs ferry bundle inspect --json on each named bundle in dir,
// a few at a time, and fails the test unless each is whole and valid.
func inspectAll(t *testing.T, dir string, names []string) {
	t.Helper()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 4)
	for _, name := range names {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			out, err := exec.Command(ferryBin, "bundle", "inspect", "--json", filepath.Join(dir, name)).Output()
			var in inspection
			if err == nil {
				err = json.Unmarshal(out, &in)
			}
			if err != nil {
				t.Errorf("ferry bundle inspect %s: %v", name, err)
				return
			}
			if !in.SignatureValid || !in.PayloadValid || in.ID+".bundle" != name {
				t.Errorf("%s: id %s, signature valid %v, payload valid %v: %s", name, in.ID, in.SignatureValid, in.PayloadValid, in.Problem)
			}
		})
	}
	wg.Wait()
}
