package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
)

// inboxEntry is one message of 'ferry inbox --json', decoded by the field
// names the CLI documents rather than by node's Go type, so that a renamed
// JSON field fails here.
type inboxEntry struct {
	ID        string     `json:"id"`
	Direction string     `json:"direction"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	Body      string     `json:"body"`
	Sent      time.Time  `json:"sent"`
	Received  *time.Time `json:"received"`
	State     string     `json:"state"`
	StateAt   time.Time  `json:"state_at"`
	Carrier   string     `json:"carrier"`
	Reason    string     `json:"reason"`
}

// importEntry is one line of 'ferry import --json'.
type importEntry struct {
	File     string `json:"file"`
	ID       string `json:"id"`
	Status   string `json:"status"`
	Messages int    `json:"messages"`
	Receipts int    `json:"receipts"`
	Reason   string `json:"reason"`
}

// inspectEntry is the part of 'ferry bundle inspect --json' the tests use.
type inspectEntry struct {
	ID             string `json:"id"`
	Signer         string `json:"signer"`
	DestType       string `json:"dest_type"`
	Dest           string `json:"dest"`
	ContentSize    uint64 `json:"content_size"`
	PayloadOffset  int64  `json:"payload_offset"`
	PayloadLength  uint64 `json:"payload_length"`
	SignatureValid bool   `json:"signature_valid"`
	PayloadValid   bool   `json:"payload_valid"`
}

// decodeJSON decodes the whole of out into v, failing the test on any
// error or trailing text.
func decodeJSON(t testing.TB, what, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: bad JSON: %v\n%s", what, err, out)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: text after the JSON value:\n%s", what, out)
	}
}

// readInbox returns a user's inbox through 'ferry inbox --json'.
func readInbox(t testing.TB, c community, user string) []inboxEntry {
	t.Helper()
	var msgs []inboxEntry
	decodeJSON(t, "inbox", mustFerry(t, "inbox", "--data", c.data, "--user", user, "--json"), &msgs)
	return msgs
}

// importReport imports paths into c with --json, requires exit 0 and
// returns the report.
func importReport(t testing.TB, c community, paths ...string) []importEntry {
	t.Helper()
	var rep []importEntry
	args := append([]string{"import", "--data", c.data, "--json"}, paths...)
	decodeJSON(t, "import", mustFerry(t, args...), &rep)
	return rep
}

// exportFolder exports from c to peer into a new folder under dir and
// returns the bundle files written there, sorted.
func exportFolder(t testing.TB, c community, peer, dir string) []string {
	t.Helper()
	out := mustFerry(t, "export", "--data", c.data, "--to", peer, "--out", dir)
	if !strings.HasPrefix(out, "exported ") {
		t.Fatalf("export: unexpected report %q", out)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.bundle"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// inspectFile runs 'ferry bundle inspect --json' on a valid bundle.
func inspectFile(t testing.TB, path string) inspectEntry {
	t.Helper()
	var in inspectEntry
	decodeJSON(t, "bundle inspect", mustFerry(t, "bundle", "inspect", "--json", path), &in)
	return in
}

// findMessage returns the inbox message with that body, failing the test
// unless there is exactly one.
func findMessage(t testing.TB, msgs []inboxEntry, body string) inboxEntry {
	t.Helper()
	var found []inboxEntry
	for _, m := range msgs {
		if m.Body == body {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one message %q, found %d in %+v", body, len(found), msgs)
	}
	return found[0]
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHandCarriedExchange carries messages from north to river on a
// "stick" (a folder), imports them more than once under more than one
// name, and carries the receipts back.
func TestHandCarriedExchange(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	introduce(t, north, river)

	const hello = "the bridge at the ford is out, take the upper path"
	const lost = "is anyone called nobody there?"
	out := mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", hello)
	if !strings.HasPrefix(out, "queued ") || !strings.Contains(out, "bob@river") {
		t.Errorf("send: got %q, want a queued report for bob@river", out)
	}
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "nobody@river", lost)
	for _, m := range readInbox(t, north, "alice") {
		if m.Direction != "out" || m.State != "queued" {
			t.Errorf("before export: %q is %s %s, want out queued", m.Body, m.Direction, m.State)
		}
	}

	// North hands its bundle to the stick: the messages are carried.
	stick := filepath.Join(root, "stick-to-river")
	files := exportFolder(t, north, "river", stick)
	if len(files) != 1 {
		t.Fatalf("export to river wrote %v, want one bundle (both messages sealed together)", files)
	}
	bundleFile := files[0]
	id := strings.TrimSuffix(filepath.Base(bundleFile), ".bundle")
	if in := inspectFile(t, bundleFile); in.ID != id || !in.SignatureValid || !in.PayloadValid {
		t.Fatalf("exported bundle %s: inspect says %+v", bundleFile, in)
	}
	aliceOut := readInbox(t, north, "alice")
	for _, body := range []string{hello, lost} {
		if m := findMessage(t, aliceOut, body); m.State != "carried" || m.Carrier != "file" {
			t.Errorf("after export: %q is %s by %q, want carried by file", body, m.State, m.Carrier)
		}
	}

	// River imports the bundle, then again, then a copy under another name.
	r := mustFerry(t, "import", "--data", river.data, bundleFile)
	wantApplied := fmt.Sprintf("applied   %s (1 messages, 0 receipts)\n", bundleFile)
	wantSummary := "1 files: 1 applied, 0 stored for carrying, 0 duplicate, 0 refused\n"
	if r != wantApplied+wantSummary {
		t.Errorf("first import printed\n%s\nwant\n%s%s", r, wantApplied, wantSummary)
	}
	rep := importReport(t, river, bundleFile)
	if len(rep) != 1 || rep[0].Status != "duplicate" || rep[0].ID != id || rep[0].File != bundleFile || rep[0].Messages != 0 {
		t.Errorf("second import: %+v, want one duplicate of %s", rep, id)
	}
	renamed := filepath.Join(root, "other-stick", "from-north (copy).bundle")
	copyFile(t, bundleFile, renamed)
	res := ferry(t, "import", "--data", river.data, renamed)
	wantDup := fmt.Sprintf("duplicate %s\n1 files: 0 applied, 0 stored for carrying, 1 duplicate, 0 refused\n", renamed)
	if res.code != 0 || res.stdout != wantDup || res.stderr != "" {
		t.Errorf("import of a renamed copy: exit %d\nstdout %q\nstderr %q\nwant exit 0, stdout %q", res.code, res.stdout, res.stderr, wantDup)
	}

	bob := readInbox(t, river, "bob")
	if len(bob) != 1 {
		t.Fatalf("bob's inbox after three imports: %+v, want exactly one message", bob)
	}
	got := bob[0]
	if got.Body != hello || got.From != "alice@north" || got.To != "bob@river" || got.Direction != "in" ||
		got.State != "received" || got.Received == nil {
		t.Errorf("bob's message: %+v", got)
	}
	if users := mustFerry(t, "user", "list", "--data", river.data); users != "bob@river\n" {
		t.Errorf("river's users after a message to nobody: %q", users)
	}

	// River's receipts ride back to north.
	back := exportFolder(t, river, "north", filepath.Join(root, "stick-to-north"))
	if len(back) != 1 {
		t.Fatalf("export to north wrote %v, want one receipt bundle", back)
	}
	rep = importReport(t, north, back...)
	if len(rep) != 1 || rep[0].Status != "applied" || rep[0].Messages != 0 || rep[0].Receipts != 2 {
		t.Errorf("north imports the receipts: %+v, want applied with 2 receipts (delivered, failed)", rep)
	}
	aliceOut = readInbox(t, north, "alice")
	if m := findMessage(t, aliceOut, hello); m.State != "delivered" || m.Reason != "" {
		t.Errorf("after the receipts: %q is %s (reason %q), want delivered", hello, m.State, m.Reason)
	}
	if m := findMessage(t, aliceOut, lost); m.State != "failed" || !strings.Contains(m.Reason, "no such user") {
		t.Errorf("after the receipts: %q is %s (reason %q), want failed with a reason naming the missing user", lost, m.State, m.Reason)
	}

	// The receipts, imported again, change nothing, and a delivered
	// bundle is not carried again.
	if rep := importReport(t, north, back...); len(rep) != 1 || rep[0].Status != "duplicate" {
		t.Errorf("north imports the receipts again: %+v, want duplicate", rep)
	}
	if again := readInbox(t, north, "alice"); !slices.Equal(again, aliceOut) {
		t.Errorf("a duplicate receipt bundle changed alice's messages:\n%+v\nwas\n%+v", again, aliceOut)
	}
	if files := exportFolder(t, north, "river", filepath.Join(root, "stick-again")); len(files) != 0 {
		t.Errorf("north exported %v to river after delivery, want nothing", files)
	}
}

// TestPayloadOpensWithAgeAndZstd checks that a bundle's payload is a plain
// age file of a plain zstd stream: the reference tools open it.
func TestPayloadOpensWithAgeAndZstd(t *testing.T) {
	ageBin, zstdBin := requireTool(t, "age"), requireTool(t, "zstd")
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	const text = "seed potatoes arrive on thursday's boat"
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", text)
	files := exportFolder(t, north, "river", filepath.Join(root, "stick"))
	if len(files) != 1 {
		t.Fatalf("export wrote %v, want one bundle", files)
	}

	in := inspectFile(t, files[0])
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if in.PayloadOffset <= 0 || uint64(in.PayloadOffset)+in.PayloadLength != uint64(len(raw)) {
		t.Fatalf("payload at %d, %d bytes, in a file of %d bytes: the payload must run to the end", in.PayloadOffset, in.PayloadLength, len(raw))
	}
	payload := raw[in.PayloadOffset:]
	if !bytes.HasPrefix(payload, []byte("age-encryption.org/v1\n")) {
		t.Fatalf("payload does not start with an age header: %q", payload[:min(len(payload), 40)])
	}

	compressed := runTool(t, payload, ageBin, "-d", "-i", filepath.Join(river.data, "identity.txt"))
	content := runTool(t, compressed, zstdBin, "-d", "-c")
	if uint64(len(content)) != in.ContentSize {
		t.Errorf("content is %d bytes, the header signs %d", len(content), in.ContentSize)
	}
	if !bytes.Contains(content, []byte(text)) {
		t.Errorf("decompressed content does not contain the message text: %q", content)
	}
	var msgs []*bundle.Message
	for rest := content; len(rest) > 0; {
		typ, body, next, err := splitRecord(rest)
		if err != nil {
			t.Fatalf("content at byte %d: %v", len(content)-len(rest), err)
		}
		rest = next
		if bundle.RecordType(typ) != bundle.RecordMessage {
			t.Errorf("unexpected record type %d", typ)
			continue
		}
		m, err := bundle.ParseMessage(body)
		if err != nil {
			t.Fatalf("message record: %v", err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 1 || msgs[0].From != "alice" || msgs[0].To != "bob" || msgs[0].Body != text || msgs[0].Room {
		t.Errorf("records: %+v, want one message from alice to bob", msgs)
	}

	// Only river can open it: north's own identity cannot.
	cmd := exec.Command(ageBin, "-d", "-i", filepath.Join(north.data, "identity.txt"))
	cmd.Stdin = bytes.NewReader(payload)
	if out, err := cmd.Output(); err == nil {
		t.Errorf("age decrypted river's payload with north's identity: %q", out)
	}
}

// splitRecord cuts one record (type uvarint, size uvarint, body) off b.
func splitRecord(b []byte) (typ uint64, body, rest []byte, err error) {
	typ, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, nil, errors.New("bad record type")
	}
	size, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return 0, nil, nil, errors.New("bad record size")
	}
	b = b[n+m:]
	if size > uint64(len(b)) {
		return 0, nil, nil, fmt.Errorf("record of %d bytes, %d left", size, len(b))
	}
	return typ, b[:size], b[size:], nil
}

// requireTool returns the path of a command the test cannot do without.
// A missing tool fails the test: an interop test that skips proves nothing.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("the %s command is needed to check interoperability but is not installed (%v): run `make test`, or apt-get install age zstd", name, err)
	}
	return p
}

// runTool runs a command with stdin and returns its standard output,
// failing the test unless it exits 0.
func runTool(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}
