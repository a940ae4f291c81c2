//go:build loadtest

package web

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"ferry/node"
)

var benchSeed = flag.String("bench.seed", "", "a store seeded by TestLoad -load.seed, for BenchmarkLargeStore")

// BenchmarkLargeStore measures the pages of the load test one at a time,
// in process, on a copy of the 100,000-message store TestLoad seeds
// (-load.seed DIR, then -bench.seed DIR). Besides the wall time per page
// it reports the process's CPU time per page (cpu-ms/op), which neighbours
// on a shared machine change less.
//
//	go test -tags loadtest -run '^$' -bench LargeStore -bench.seed /tmp/seed100k ./web
func BenchmarkLargeStore(b *testing.B) {
	if *benchSeed == "" {
		b.Skip("no -bench.seed")
	}
	dir := filepath.Join(b.TempDir(), "north")
	if err := os.CopyFS(dir, os.DirFS(*benchSeed)); err != nil {
		b.Fatal(err)
	}
	n, err := node.Open(dir, node.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	s, err := New(n, Options{MaxUpload: testMaxUpload})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	f := &fixture{t: b, n: n, s: s, clock: &clock{t: time.Now()}}
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	rooms := 50
	for _, bc := range []struct {
		name string
		path func(i int) string
	}{
		{"RoomPage", func(i int) string { return fmt.Sprintf("/rooms/room%02d", i*7%rooms) }},
		{"RoomList", func(int) string { return "/rooms" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cpu0 := cpuNow()
			for i := range b.N {
				resp, _ := c.get(bc.path(i))
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64((cpuNow()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
