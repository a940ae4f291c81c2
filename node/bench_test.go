package node_test

// The small-message benchmark: 100,000 messages of 200 bytes, sealed into
// bundles of at most 10,000 messages as a node seals them, then ingested
// into a fresh node with its real SQLite store. It reports messages/s and
// the bytes each message costs on the wire, to set against NNCP's 73-85
// messages/s and 620 bytes per message (docs/benchmarks.md).
//
//	go test ./node -run '^$' -bench IngestSmallMessages -count 5

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"ferry/bundle"
	"ferry/node"
)

// smallMessageLen is the size of one message text, headers included, as
// in the peer kit's 04_nncp_small.sh.
const smallMessageLen = 200

// smallMessages returns n message texts of smallMessageLen bytes, made as
// 04_nncp_small.sh makes them: mail-like headers, then words drawn from a
// vocabulary of 14.
func smallMessages(n int) []string {
	words := strings.Fields("meet market water seed radio clinic school road rain bridge power field news doctor")
	rng := rand.New(rand.NewPCG(5, 5))
	out := make([]string, n)
	var sb strings.Builder
	for i := range out {
		sb.Reset()
		fmt.Fprintf(&sb, "From: %s@community\nTo: %s@community\nMsg-Id: %06d\n\n", smallFrom(i), smallTo(i), i)
		for sb.Len() < smallMessageLen-1 {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		out[i] = sb.String()[:smallMessageLen-1] + "\n"
	}
	return out
}

// smallFrom and smallTo are the sending and receiving users of message i.
func smallFrom(i int) string { return fmt.Sprintf("node%02d", i%37) }
func smallTo(i int) string   { return fmt.Sprintf("node%02d", i*7%41) }

// smallMessageNodes makes a source node, and the data directory of a
// destination node that trusts it and has every user the messages go to,
// closed, to be copied for each fresh start.
func smallMessageNodes(tb testing.TB) (src *node.Node, dstDir string) {
	tb.Helper()
	ctx := context.Background()
	src, err := node.Init(filepath.Join(tb.TempDir(), "hill"), "hill", node.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	dstDir = filepath.Join(tb.TempDir(), "river")
	dst, err := node.Init(dstDir, "river", node.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer dst.Close()
	for i := range 41 { // smallTo's users
		if err := dst.AddUser(ctx, fmt.Sprintf("node%02d", i)); err != nil {
			tb.Fatal(err)
		}
	}
	for _, p := range [][2]*node.Node{{src, dst}, {dst, src}} {
		card, err := p[0].Card(nil, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := p[1].AddPeer(ctx, card, ""); err != nil {
			tb.Fatal(err)
		}
	}
	return src, dstDir
}

// sealSmallMessages writes texts as messages from src to the node whose
// ID and recipient are given, perBundle to a bundle, the way Node.Seal
// seals them, into files under dir. It returns the files and their bytes.
func sealSmallMessages(tb testing.TB, src *node.Node, dest bundle.NodeID, rcpt age.Recipient, texts []string, perBundle int, dir string) ([]string, int64) {
	tb.Helper()
	// Written over the last two days, a message every 1.7 s, sealed now.
	created := time.Now().Truncate(time.Second)
	written := created.Add(-48 * time.Hour)
	var paths []string
	var total int64
	var body []byte
	for seq := 1; len(texts) > 0; seq++ {
		batch := texts[:min(perBundle, len(texts))]
		first := len(paths) * perBundle
		texts = texts[len(batch):]
		p := filepath.Join(dir, fmt.Sprintf("%03d.bundle", seq))
		f, err := os.Create(p)
		if err != nil {
			tb.Fatal(err)
		}
		h := bundle.Header{Kind: bundle.KindMessages, Priority: node.PriorityMessages, Source: src.ID(),
			Dest: bundle.ToNode(dest), Seq: uint64(seq), Created: created, Expires: created.Add(node.DefaultMessageTTL)}
		w, err := bundle.NewWriter(f, h, src.Identity().Sign, rcpt)
		if err != nil {
			tb.Fatal(err)
		}
		for k, text := range batch {
			i := first + k
			m := bundle.Message{Seq: uint64(i + 1), Created: written.Add(time.Duration(i) * 1700 * time.Millisecond),
				From: smallFrom(i), To: smallTo(i), Body: text}
			if body, err = m.AppendBinary(body[:0]); err != nil {
				tb.Fatal(err)
			}
			if err := w.WriteRecord(bundle.RecordMessage, body); err != nil {
				tb.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, p)
		total += w.Size()
	}
	return paths, total
}

// ingestAll takes every bundle in paths into n and returns the messages
// applied.
func ingestAll(tb testing.TB, n *node.Node, paths []string) int {
	tb.Helper()
	applied := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			tb.Fatal(err)
		}
		res, err := n.Ingest(context.Background(), f)
		f.Close()
		if err != nil {
			tb.Fatalf("ingest %s: %v", filepath.Base(p), err)
		}
		if res.Status != node.StatusApplied {
			tb.Fatalf("ingest %s: %s", filepath.Base(p), res.Status)
		}
		applied += res.Messages
	}
	return applied
}

// openCopy opens a fresh copy of the node in dir.
func openCopy(tb testing.TB, dir string) *node.Node {
	tb.Helper()
	fresh := filepath.Join(tb.TempDir(), "node")
	if err := os.CopyFS(fresh, os.DirFS(dir)); err != nil {
		tb.Fatal(err)
	}
	n, err := node.Open(fresh, node.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// smallMessageRun seals total messages and returns the bundles, their
// bytes, and the data directory of a destination ready to take them.
func smallMessageRun(tb testing.TB, total, perBundle int) ([]string, int64, string) {
	tb.Helper()
	src, dstDir := smallMessageNodes(tb)
	dst, err := node.Open(dstDir, node.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	id, rcpt := dst.ID(), dst.Identity().Age.Recipient()
	dst.Close()
	paths, wire := sealSmallMessages(tb, src, id, rcpt, smallMessages(total), perBundle, tb.TempDir())
	return paths, wire, dstDir
}

func TestIngestSmallMessages(t *testing.T) {
	const total, perBundle = 250, 100
	paths, _, dstDir := smallMessageRun(t, total, perBundle)
	if len(paths) != 3 {
		t.Fatalf("sealed %d bundles, want 3", len(paths))
	}
	n := openCopy(t, dstDir)
	defer n.Close()
	if got := ingestAll(t, n, paths); got != total {
		t.Fatalf("applied %d messages, want %d", got, total)
	}
	inbox, err := n.Inbox(t.Context(), smallTo(3))
	if err != nil {
		t.Fatal(err)
	}
	want := smallMessages(4)[3]
	if len(inbox) == 0 || inbox[0].Body != want || len(want) != smallMessageLen {
		t.Fatalf("inbox of %s starts %+v, want the body %q", smallTo(3), inbox[:min(len(inbox), 1)], want)
	}
}

// BenchmarkIngestSmallMessages ingests 100,000 messages of 200 bytes, in
// bundles of 10,000, into a fresh node. msgs/s counts messages applied per
// second; B/msg is the bundles' bytes per message.
func BenchmarkIngestSmallMessages(b *testing.B) {
	const total, perBundle = 100_000, 10_000
	paths, wire, dstDir := smallMessageRun(b, total, perBundle)
	for b.Loop() {
		b.StopTimer()
		n := openCopy(b, dstDir)
		b.StartTimer()
		if got := ingestAll(b, n, paths); got != total {
			b.Fatalf("applied %d messages, want %d", got, total)
		}
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(wire)/total, "B/msg")
}
