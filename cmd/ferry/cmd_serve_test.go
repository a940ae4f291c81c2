package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for a server goroutine to write
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe runs serve on an empty data directory: it initializes the
// node, prints the setup code and the address, serves, and returns
// cleanly when its context ends (SIGTERM in main).
func TestServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", data, "--name", "north", "--listen", "127.0.0.1:0", "--sync-listen", "off"}, nil, &stdout, &stderr)
	}()
	addrRE := regexp.MustCompile(`on http://([0-9.:]+)/`)
	var addr string
	// The address comes first, the setup code after a write: wait for both.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			if strings.Contains(stderr.String(), "setup code: ") {
				break
			}
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("serve printed no address:\n%s", stderr.String())
	}
	for _, want := range []string{"initialized node north", "setup code: "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve's console lacks %q:\n%s", want, stderr.String())
		}
	}
	resp, err := http.Get("http://" + addr + "/setup")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /setup: %v %v", resp, err)
	}
	resp.Body.Close()

	// A second server on the same address fails at once.
	err = run(t.Context(), []string{"serve", "--data", filepath.Join(t.TempDir(), "other"), "--listen", addr, "--sync-listen", "off"}, nil, &stdout, &lockedBuffer{})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("serve on a taken address: %v, want an immediate listen error", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the address still accepts connections after serve returned")
	}

	// A restart before setup is done opens the node (no new init) and
	// prints a fresh setup code.
	ctx2, cancel2 := context.WithCancel(t.Context())
	var stderr2 lockedBuffer
	go func() {
		done <- run(ctx2, []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--sync-listen", "off"}, nil, &stdout, &stderr2)
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr2.String(), "setup code") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel2()
	<-done
	if strings.Contains(stderr2.String(), "initialized") || !strings.Contains(stderr2.String(), "setup code") {
		t.Errorf("second start: %s", stderr2.String())
	}
}

func TestHostName(t *testing.T) {
	for in, want := range map[string]string{
		"Pi-Garden.local":       "pi-garden",
		"raspberrypi":           "raspberrypi",
		"___":                   "ferry",
		"":                      "ferry",
		"élan vital":            "lan-vital",
		strings.Repeat("a", 40): strings.Repeat("a", 32),
	} {
		if got := hostName(in); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
}
