package carriers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

// BenchmarkSync10000Messages measures a live sync of 10,000 messages
// between two nodes on loopback, over TCP and TLS, as ferry sync runs it
// against ferry serve: seal, hello, reconcile, transfer, verify, decrypt,
// apply, and the receipt back. Goal: under 5 s.
//
//	go test ./carriers -run '^$' -bench Sync10000 -benchtime 3x
func BenchmarkSync10000Messages(b *testing.B) {
	const msgs = 10000
	for b.Loop() {
		b.StopTimer()
		north, river := carriertest.NewNode(b, "north"), carriertest.NewNode(b, "river")
		carriertest.Introduce(b, north, river)
		queueMessages(b, north, river, msgs)
		srv := carriers.NewTCPServer(river, "127.0.0.1:0")
		if err := srv.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		tcp, _ := carriers.NewTCP(north)
		b.StartTimer()
		start := time.Now()
		l, err := tcp.Dial(context.Background(), srv.ListenAddr().String(), river.ID())
		if err != nil {
			b.Fatal(err)
		}
		rep, err := carriers.Sync(context.Background(), north, l, carriers.Options{Peer: river.ID()})
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		srv.Close()
		if rep.Sent.Bundles != 1 || rep.Receipts != 1 {
			b.Fatalf("sent %d bundles, %d receipts back", rep.Sent.Bundles, rep.Receipts)
		}
		b.ReportMetric(elapsed.Seconds(), "s/sync")
		b.ReportMetric(float64(rep.WireSent+rep.WireReceived)/msgs, "wire-B/msg")
		b.StartTimer()
	}
}

// queueMessages queues n messages of about 100 bytes from a to b.
func queueMessages(tb testing.TB, a, b *node.Node, n int) {
	tb.Helper()
	to := node.Address{User: b.Name(), Node: b.Name()}
	for i := range n {
		if _, err := a.Send(context.Background(), a.Name(), to, fmt.Sprintf("message %d: the water point at the school is fixed; bring containers tomorrow morning", i)); err != nil {
			tb.Fatal(err)
		}
	}
}
