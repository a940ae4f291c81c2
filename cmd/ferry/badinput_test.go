package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"ferry/bundle"
)

// TestBadInputRefused feeds river damaged, hostile and foreign files. Each
// must be refused with exit status 1 and one line on stderr that says why,
// and must leave river exactly as it was.
func TestBadInputRefused(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	hill := newCommunity(t, root, "hill", "carol")
	introduce(t, north, river, hill)
	// east knows river, but river does not know east.
	east := newCommunity(t, root, "east", "dave")
	mustFerry(t, "peer", "add", "--data", east.data, strings.TrimSpace(mustFerry(t, "card", "--data", river.data)))

	// Give river state worth guarding: a message in bob's inbox and a
	// bundle in its spool that it carries from hill to north.
	mustFerry(t, "send", "--data", hill.data, "--from", "carol", "--to", "bob@river", "from the hill")
	mustFerry(t, "send", "--data", hill.data, "--from", "carol", "--to", "alice@north", "please carry this")
	rep := importReport(t, river, exportFolder(t, hill, "river", filepath.Join(root, "hill-to-river"))...)
	if statuses := importStatuses(rep); statuses != "applied,stored" {
		t.Fatalf("seeding river: statuses %s, want applied,stored: %+v", statuses, rep)
	}

	northKey := readSigningKey(t, north)
	riverID := bundle.NodeID(readSigningKey(t, river).Public().(ed25519.PublicKey))
	hillID := bundle.NodeID(readSigningKey(t, hill).Public().(ed25519.PublicKey))
	riverRcpt := readRecipient(t, river)

	// Real bundles from north: one river reads (the apply path), one it
	// only carries to hill (the spool path). River has not seen them.
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "fixture for bob")
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "carol@hill", "fixture for carol")
	var forRiver, forHill string
	for _, f := range exportFolder(t, north, "river", filepath.Join(root, "north-to-river")) {
		switch inspectFile(t, f).Dest {
		case riverID.String():
			forRiver = f
		case hillID.String():
			forHill = f
		}
	}
	if forRiver == "" || forHill == "" {
		t.Fatalf("north's export lacks a bundle for river (%q) or for hill (%q)", forRiver, forHill)
	}
	mustFerry(t, "send", "--data", east.data, "--from", "dave", "--to", "bob@river", "hello from a stranger")
	strangerFiles := exportFolder(t, east, "river", filepath.Join(root, "east-to-river"))
	if len(strangerFiles) != 1 {
		t.Fatalf("east's export: %v, want one bundle", strangerFiles)
	}
	fromStranger := strangerFiles[0]

	bad := filepath.Join(root, "bad")
	put := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(bad, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Now()
	honest := func(seq uint64) bundle.Header {
		return bundle.Header{Kind: bundle.KindMessages, Priority: 1, Source: bundle.NodeID(northKey.Public().(ed25519.PublicKey)),
			Dest: bundle.ToNode(riverID), Seq: seq, Created: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour)}
	}

	before := observe(t, river)
	unchanged := func(t *testing.T) {
		t.Helper()
		if after := observe(t, river); after != before {
			t.Errorf("river changed:\n--- before\n%s\n--- after\n%s", before, after)
		}
	}

	t.Run("flipped bytes", func(t *testing.T) {
		for _, fx := range []struct{ name, file string }{{"for-river", forRiver}, {"for-hill", forHill}} {
			orig := readFile(t, fx.file)
			off := inspectFile(t, fx.file).PayloadOffset
			var want []refusal
			for i := range orig {
				for _, mask := range []byte{0xff, 1 << (i % 8)} {
					b := bytes.Clone(orig)
					b[i] ^= mask
					p := put(fmt.Sprintf("flip-%s/%05d-%02x.bundle", fx.name, i, mask), b)
					want = append(want, refusal{p, flipReasons(i, off)})
				}
			}
			importRefusing(t, river, want, filepath.Join(bad, "flip-"+fx.name))
			unchanged(t)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		for _, fx := range []struct{ name, file string }{{"for-river", forRiver}, {"for-hill", forHill}} {
			orig := readFile(t, fx.file)
			var want []refusal
			for n := range len(orig) {
				p := put(fmt.Sprintf("cut-%s/%05d.bundle", fx.name, n), orig[:n])
				words := []string{"truncated"}
				if n == 0 {
					words = []string{"not a ferry bundle"}
				}
				want = append(want, refusal{p, words})
			}
			p := put(fmt.Sprintf("cut-%s/longer.bundle", fx.name), append(bytes.Clone(orig), 0))
			want = append(want, refusal{p, []string{"trailing data"}})
			importRefusing(t, river, want, filepath.Join(bad, "cut-"+fx.name))
			unchanged(t)
		}
	})

	t.Run("unknown signer", func(t *testing.T) {
		importRefusing(t, river, []refusal{{fromStranger, []string{"unknown node"}}}, fromStranger)
		unchanged(t)
	})

	t.Run("zstd bomb", func(t *testing.T) {
		rec := messageRecord(t, 900001, "bomb")
		const zeros = 200 << 20
		b := sealByHand(t, northKey, riverRcpt, honest(9001), uint64(len(rec)), func(w io.Writer) error {
			if _, err := w.Write(rec); err != nil {
				return err
			}
			_, err := io.CopyN(w, zeroReader{}, zeros)
			return err
		})
		if len(b) > 1<<20 {
			t.Fatalf("the bomb is %d bytes: not much of a bomb", len(b))
		}
		p := put("bomb.bundle", b)
		importRefusing(t, river, []refusal{{p, []string{"content"}}}, p)
		unchanged(t)
	})

	t.Run("content size over the limit", func(t *testing.T) {
		rec := messageRecord(t, 900002, "declares too much")
		b := sealByHand(t, northKey, riverRcpt, honest(9002), bundle.DefaultMaxContentSize+1, writeAll(rec))
		p := put("content-over-limit.bundle", b)
		importRefusing(t, river, []refusal{{p, []string{"limit"}}}, p)
		unchanged(t)
	})

	t.Run("record over a limit", func(t *testing.T) {
		// A receipt naming more messages than a receipt may: its parser
		// stops at the count, before reading them.
		body := append([]byte{byte(bundle.ReceiptDelivered)}, make([]byte, 32)...)
		body = binary.AppendUvarint(body, uint64(now.UnixMilli()))
		body = binary.AppendUvarint(body, 1<<20)
		rec := binary.AppendUvarint(nil, uint64(bundle.RecordReceipt))
		rec = binary.AppendUvarint(rec, uint64(len(body)))
		rec = append(rec, body...)
		// The message before it must not be kept either.
		p := writeBundle(t, filepath.Join(bad, "receipt-over-limit.bundle"), honest(9006), northKey, riverRcpt,
			messageRecord(t, 900006, "before the bad receipt"), rec)
		importRefusing(t, river, []refusal{{p, []string{"limit"}}}, p)
		unchanged(t)
	})

	t.Run("expired", func(t *testing.T) {
		h := honest(9003)
		h.Created, h.Expires = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
		p := writeBundle(t, filepath.Join(bad, "expired.bundle"), h, northKey, riverRcpt, messageRecord(t, 900003, "too late"))
		importRefusing(t, river, []refusal{{p, []string{"expired"}}}, p)
		unchanged(t)
	})

	t.Run("for an unknown node", func(t *testing.T) {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h := honest(9004)
		h.Dest = bundle.ToNode(bundle.NodeID(pub))
		p := writeBundle(t, filepath.Join(bad, "for-a-stranger.bundle"), h, northKey, riverRcpt, messageRecord(t, 900004, "to nowhere"))
		importRefusing(t, river, []refusal{{p, []string{"cannot carry"}}}, p)
		unchanged(t)
	})

	t.Run("header length 2^60", func(t *testing.T) {
		b := binary.AppendUvarint([]byte(bundle.Magic), 1<<60)
		b = append(b, bytes.Repeat([]byte{0xa5}, 300)...)
		p := put("huge-header.bundle", b)
		importRefusing(t, river, []refusal{{p, []string{"limit"}}}, p)
		unchanged(t)
	})

	t.Run("not a bundle", func(t *testing.T) {
		png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
		var want []refusal
		for name, b := range map[string][]byte{
			"notes.txt":   []byte("meeting at the mill on sunday\n"),
			"ferry.txt":   []byte("FERRY timetable: 8:00, 12:00\n"),
			"empty":       nil,
			"picture.png": png,
		} {
			want = append(want, refusal{put("not-bundles/"+name, b), []string{"not a ferry bundle"}})
		}
		importRefusing(t, river, want, filepath.Join(bad, "not-bundles"))
		unchanged(t)
	})

	t.Run("folder of good and bad", func(t *testing.T) {
		dir := filepath.Join(root, "mixed")
		const body = "the one good bundle in the folder"
		good := filepath.Join(dir, "good.bundle")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Sealed by hand like the bomb, but honestly: proof that the hand
		// sealing is not why the bomb was refused.
		rec := messageRecord(t, 900005, body)
		if err := os.WriteFile(good, sealByHand(t, northKey, riverRcpt, honest(9005), uint64(len(rec)), writeAll(rec)), 0o644); err != nil {
			t.Fatal(err)
		}
		orig := readFile(t, forRiver)
		expired := readFile(t, filepath.Join(bad, "expired.bundle"))
		want := []refusal{
			{filepath.Join(dir, "a-expired.bundle"), []string{"expired"}},
			{filepath.Join(dir, "b-truncated.bundle"), []string{"truncated"}},
			{filepath.Join(dir, "c-stranger.bundle"), []string{"unknown node"}},
			{filepath.Join(dir, "readme.txt"), []string{"not a ferry bundle"}},
		}
		for i, b := range [][]byte{expired, orig[:len(orig)/2], readFile(t, fromStranger), []byte("carry these to river\n")} {
			if err := os.WriteFile(want[i].file, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res := importRefusing(t, river, want, dir)
		wantOut := fmt.Sprintf("applied   %s (1 messages, 0 receipts)\n5 files: 1 applied, 0 stored for carrying, 0 duplicate, 4 refused\n", good)
		if res.stdout != wantOut {
			t.Errorf("stdout:\n%s\nwant\n%s", res.stdout, wantOut)
		}
		if m := findMessage(t, readInbox(t, river, "bob"), body); m.From != "alice@north" || m.State != "received" {
			t.Errorf("the good bundle's message: %+v", m)
		}
	})

	// The fixtures themselves were sound: river takes them whole, and
	// takes the stranger's once it trusts east.
	rep = importReport(t, river, forRiver, forHill)
	if statuses := importStatuses(rep); statuses != "applied,stored" {
		t.Errorf("importing the undamaged fixtures: %s, want applied,stored: %+v", statuses, rep)
	}
	findMessage(t, readInbox(t, river, "bob"), "fixture for bob")
	mustFerry(t, "peer", "add", "--data", river.data, strings.TrimSpace(mustFerry(t, "card", "--data", east.data)))
	if rep := importReport(t, river, fromStranger); importStatuses(rep) != "applied" {
		t.Errorf("importing the stranger's bundle once trusted: %+v", rep)
	}
}

// flipReasons returns the words one of which the refusal of a bundle with
// byte i flipped must name, given the payload's offset.
func flipReasons(i int, payloadOffset int64) []string {
	sigStart := int(payloadOffset) - bundle.SignatureSize
	switch {
	case i < len("FERRY\x00"):
		return []string{"not a ferry bundle"}
	case i < len(bundle.Magic):
		return []string{"unsupported format version"}
	case i < sigStart:
		// The header length or the header: whatever no longer parses,
		// or else the signature.
		return []string{"signature", "malformed", "truncated", "limit"}
	case i < int(payloadOffset):
		return []string{"signature"}
	}
	return []string{"payload does not match its signed hash"}
}

// refusal is a file an import must refuse, with the words one of which its
// reason must contain.
type refusal struct {
	file  string
	words []string
}

// importRefusing imports paths into c and checks that it exits 1 and
// refuses exactly the files of want, each on one stderr line naming one of
// its words, and that stderr holds nothing else but the closing count.
func importRefusing(t *testing.T, c community, want []refusal, paths ...string) result {
	t.Helper()
	res := ferry(t, append([]string{"import", "--data", c.data}, paths...)...)
	if res.code != 1 {
		t.Errorf("import: exit %d, want 1", res.code)
	}
	lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
	reasons := map[string][]string{}
	var other []string
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "refused ")
		file, reason, ok2 := strings.Cut(rest, ": ")
		if !ok || !ok2 {
			other = append(other, l)
			continue
		}
		reasons[file] = append(reasons[file], reason)
	}
	if wantOther := fmt.Sprintf("ferry: %d of ", len(want)); len(other) != 1 || !strings.HasPrefix(other[0], wantOther) || other[0] != lines[len(lines)-1] {
		t.Errorf("stderr holds lines besides the refusals: %q, want only a closing %q...", other, wantOther)
	}
	var problems []string
	for _, w := range want {
		rs := reasons[w.file]
		delete(reasons, w.file)
		switch {
		case len(rs) != 1:
			problems = append(problems, fmt.Sprintf("%s: %d refusal lines, want 1 (stdout: %s)", w.file, len(rs), grepLine(res.stdout, w.file)))
		case !containsAny(rs[0], w.words):
			problems = append(problems, fmt.Sprintf("%s: reason %q names none of %q", w.file, rs[0], w.words))
		}
	}
	for f := range reasons {
		problems = append(problems, fmt.Sprintf("%s: refused, but should not have been", f))
	}
	if len(problems) > 0 {
		t.Errorf("%d of %d files wrongly handled, e.g.:\n%s", len(problems), len(want), strings.Join(problems[:min(len(problems), 12)], "\n"))
	}
	return res
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func grepLine(text, sub string) string {
	for l := range strings.Lines(text) {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return "nothing"
}

// importStatuses returns the statuses of an import report, sorted: files
// are named by bundle ID, so their order is random.
func importStatuses(rep []importEntry) string {
	var s []string
	for _, r := range rep {
		s = append(s, r.Status)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// observe returns what can be seen of a node from outside: its user's
// inbox, its peers and users, and every file and folder of its spool with
// size and hash.
func observe(t testing.TB, c community) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("inbox " + c.user + ":\n" + mustFerry(t, "inbox", "--data", c.data, "--user", c.user, "--json"))
	b.WriteString("peers:\n" + mustFerry(t, "peer", "list", "--data", c.data))
	b.WriteString("users:\n" + mustFerry(t, "user", "list", "--data", c.data))
	b.WriteString("spool:\n")
	spool := filepath.Join(c.data, "spool")
	err := filepath.WalkDir(spool, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(spool, p)
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/\n", rel)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %x\n", rel, len(data), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readSigningKey reads a node's ed25519 key from its data directory.
func readSigningKey(t testing.TB, c community) ed25519.PrivateKey {
	t.Helper()
	blk, _ := pem.Decode(readFile(t, filepath.Join(c.data, "node.key")))
	if blk == nil {
		t.Fatalf("%s/node.key is not PEM", c.data)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sk, ok := k.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("%s/node.key holds a %T, want ed25519", c.data, k)
	}
	return sk
}

// readRecipient reads the age recipient of a node's identity.
func readRecipient(t testing.TB, c community) *age.X25519Recipient {
	t.Helper()
	ids, err := age.ParseIdentities(bytes.NewReader(readFile(t, filepath.Join(c.data, "identity.txt"))))
	if err != nil || len(ids) != 1 {
		t.Fatalf("%s/identity.txt: %d identities, %v", c.data, len(ids), err)
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		t.Fatalf("%s/identity.txt holds a %T", c.data, ids[0])
	}
	return id.Recipient()
}

// messageRecord returns a framed message record from alice to bob.
func messageRecord(t testing.TB, seq uint64, body string) []byte {
	t.Helper()
	m := bundle.Message{Seq: seq, Created: time.Now(), From: "alice", To: "bob", Body: body}
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := binary.AppendUvarint(nil, uint64(bundle.RecordMessage))
	rec = binary.AppendUvarint(rec, uint64(len(b)))
	return append(rec, b...)
}

func writeAll(b []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(b); return err }
}

// sealByHand builds a bundle the way a dishonest signer could: content is
// compressed and encrypted to rcpt as a writer would, but the header
// declares contentSize whatever content really was.
func sealByHand(t testing.TB, key ed25519.PrivateKey, rcpt age.Recipient, h bundle.Header, contentSize uint64, content func(io.Writer) error) []byte {
	t.Helper()
	var payload bytes.Buffer
	aw, err := age.Encrypt(&payload, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := content(zw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	h.ContentSize = contentSize
	h.PayloadSize = uint64(payload.Len())
	h.PayloadHash = sha256.Sum256(payload.Bytes())
	rand.Read(h.Nonce[:])
	signed := h.SignedBytes()
	out := append(signed, ed25519.Sign(key, signed)...)
	return append(out, payload.Bytes()...)
}

// writeBundle writes a bundle of records with bundle.NewWriter.
func writeBundle(t testing.TB, path string, h bundle.Header, key ed25519.PrivateKey, rcpt age.Recipient, records ...[]byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := bundle.NewWriter(f, h, key, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range records {
		typ, body, _, err := splitRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteRecord(bundle.RecordType(typ), body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
