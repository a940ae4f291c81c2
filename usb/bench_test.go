package usb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/node"
	"ferry/usb"
)

// BenchmarkStickSync10000Messages measures a whole stick round for 10,000
// messages: north syncs them onto a stick, river syncs them off (verify,
// decrypt, apply, receipts), as a person would run it. Goal: under 5 s.
func BenchmarkStickSync10000Messages(b *testing.B) {
	const msgs = 10000
	for b.Loop() {
		b.StopTimer()
		ctx := context.Background()
		root := b.TempDir()
		north, river := benchNode(b, root, "north"), benchNode(b, root, "river")
		for _, p := range [][2]*node.Node{{north, river}, {river, north}} {
			card, _ := p[0].Card(nil, nil)
			if _, err := p[1].AddPeer(ctx, card, ""); err != nil {
				b.Fatal(err)
			}
		}
		to := node.Address{User: "bob", Node: "river"}
		for i := range msgs {
			if _, err := north.Send(ctx, "alice", to, fmt.Sprintf("message %d: the water point at the school is fixed; bring containers tomorrow morning", i)); err != nil {
				b.Fatal(err)
			}
		}
		stick := filepath.Join(root, "stick")
		if err := mkdir(stick); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		out, err := usb.Sync(ctx, north, stick, usb.Options{})
		if err != nil {
			b.Fatal(err)
		}
		in, err := usb.Sync(ctx, river, stick, usb.Options{})
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if in.Messages != msgs {
			b.Fatalf("river applied %d messages, want %d", in.Messages, msgs)
		}
		b.ReportMetric(elapsed.Seconds(), "s/round")
		b.ReportMetric(float64(out.ExportedBytes)/msgs, "stick-B/msg")
		north.Close()
		river.Close()
		b.StartTimer()
	}
}

func benchNode(b *testing.B, root, name string) *node.Node {
	n, err := node.Init(filepath.Join(root, name), name, node.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := n.AddUser(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

func mkdir(p string) error { return os.MkdirAll(p, 0o755) }
