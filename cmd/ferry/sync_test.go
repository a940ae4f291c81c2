package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/carriers"
	"ferry/node"
)

// freePort returns a loopback address nobody listens on, for network
// (tcp or udp).
func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is a running 'ferry serve'.
type server struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// serve starts 'ferry serve' for c with extra flags and waits until it
// listens for peers.
func serve(t *testing.T, c community, args ...string) *server {
	t.Helper()
	args = append([]string{"serve", "--data", c.data, "--listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), "FERRY_DATA=")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		once := sync.Once{}
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "ferry: syncing with peers on ") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s: serve did not stop on SIGTERM", c.name)
		}
		if t.Failed() {
			t.Logf("%s serve log:\n%s", c.name, s.log())
		}
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: serve did not start:\n%s", c.name, s.log())
	}
	return s
}

// introduceAt makes each community trust the others, with the addresses
// their cards give.
func introduceAt(t *testing.T, addrs map[string]string, cs ...community) {
	t.Helper()
	for _, a := range cs {
		args := []string{"card", "--data", a.data}
		if addr := addrs[a.name]; addr != "" {
			args = append(args, "--addr", addr)
		}
		card := strings.TrimSpace(mustFerry(t, args...))
		for _, b := range cs {
			if a.name != b.name {
				mustFerry(t, "peer", "add", "--data", b.data, card)
			}
		}
	}
}

// syncReport is the part of 'ferry sync --json' the tests read.
type syncReport struct {
	PeerName  string `json:"peer_name"`
	InSync    bool   `json:"in_sync"`
	Reconcile struct {
		Mode       string `json:"mode"`
		Sent       int64  `json:"bytes_sent"`
		Received   int64  `json:"bytes_received"`
		RoundTrips int    `json:"round_trips"`
	} `json:"reconcile"`
	Sent struct {
		Bundles int   `json:"bundles"`
		Bytes   int64 `json:"bytes"`
	} `json:"sent"`
	Received struct {
		Bundles int `json:"bundles"`
	} `json:"received"`
	Messages int    `json:"messages"`
	Receipts int    `json:"receipts"`
	Error    string `json:"error"`
}

// TestSyncCommandWithServe: 'ferry sync' against a running 'ferry serve'
// delivers a message once and brings the receipt back; the server
// refuses an unknown node with a reason, survives garbage, and a sync
// with a peer that stalls gives up at the idle deadline.
func TestSyncCommandWithServe(t *testing.T) {
	root := t.TempDir()
	north, river := newCommunity(t, root, "north", "ada"), newCommunity(t, root, "river", "bob")
	addr := freePort(t, "tcp")
	introduceAt(t, map[string]string{"river": addr}, north, river)
	serve(t, river, "--sync-listen", addr, "--discover=false")

	mustFerry(t, "send", "--data", north.data, "--from", "ada", "--to", "bob@river", "the bridge is open")
	var rep syncReport
	decodeJSON(t, "sync", mustFerry(t, "sync", "--data", north.data, "--json", "river"), &rep)
	// Received: the receipt, and the announcement river's serve made at
	// start (docs/network.md), which puts river in north's directory.
	if rep.PeerName != "river" || rep.Sent.Bundles != 1 || rep.Received.Bundles != 2 || rep.Receipts != 1 {
		t.Errorf("sync report: %+v", rep)
	}
	if out := mustFerry(t, "network", "--data", north.data); !strings.Contains(out, "river") {
		t.Errorf("river's announcement did not reach north's directory:\n%s", out)
	}
	if m := findMessage(t, readInbox(t, river, "bob"), "the bridge is open"); m.State != "received" {
		t.Errorf("river: %+v", m)
	}
	if m := findMessage(t, readInbox(t, north, "ada"), "the bridge is open"); m.State != "delivered" {
		t.Errorf("north: the message is %q, want delivered (the receipt came back)", m.State)
	}
	// In sync now: 16 bytes of digest each way say so.
	decodeJSON(t, "sync", mustFerry(t, "sync", "--data", north.data, "--json", addr), &rep)
	if !rep.InSync || rep.Sent.Bundles+rep.Received.Bundles != 0 {
		t.Errorf("second sync: %+v", rep)
	}

	t.Run("UnknownKey", func(t *testing.T) {
		stranger := newCommunity(t, root, "stranger", "eve")
		card := strings.TrimSpace(mustFerry(t, "card", "--data", river.data))
		mustFerry(t, "peer", "add", "--data", stranger.data, card)
		mustFerry(t, "send", "--data", stranger.data, "--from", "eve", "--to", "bob@river", "let me in")
		r := ferry(t, "sync", "--data", stranger.data, addr)
		if r.code != 1 || !strings.Contains(r.stderr, "not a trusted peer of river") {
			t.Errorf("stranger's sync: exit %d, %s", r.code, r.stderr)
		}
		for _, m := range readInbox(t, river, "bob") {
			if m.Body == "let me in" {
				t.Error("river took the stranger's message")
			}
		}
	})

	t.Run("Garbage", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("\x16\x03\x01\x00\x05hello, this is not a ferry node"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Error("river kept a garbage connection open")
				}
				break
			}
		}
		c.Close()
		// River still serves its peers.
		mustFerry(t, "send", "--data", north.data, "--from", "ada", "--to", "bob@river", "after the garbage")
		mustFerry(t, "sync", "--data", north.data, "river")
		findMessage(t, readInbox(t, river, "bob"), "after the garbage")
	})

	t.Run("Stall", func(t *testing.T) {
		// A node that completes TLS and then says nothing.
		quiet, err := node.Init(filepath.Join(root, "quiet"), "quiet", node.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer quiet.Close()
		tcp, err := carriers.NewTCP(quiet)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l, err := tcp.Server(context.Background(), c)
			if err != nil {
				return
			}
			time.Sleep(10 * time.Second)
			l.Close()
		}()
		start := time.Now()
		r := ferry(t, "sync", "--data", north.data, "--idle", "1s", ln.Addr().String())
		if r.code != 1 || !strings.Contains(r.stderr, "stalled") {
			t.Errorf("sync with a silent node: exit %d, %s", r.code, r.stderr)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("took %s to give up", d)
		}
	})
}

// TestThreeServesFindEachOtherAndDeliver runs three 'ferry serve'
// processes on loopback with LAN discovery: north and lake hear only
// river. A message from north to lake and one back are delivered once,
// carried by river, and their receipts come back, with nobody running a
// command.
func TestThreeServesFindEachOtherAndDeliver(t *testing.T) {
	root := t.TempDir()
	north, river, lake := newCommunity(t, root, "north", "ada"), newCommunity(t, root, "river", "bob"), newCommunity(t, root, "lake", "cy")
	introduceAt(t, nil, north, river, lake)
	beacon := map[string]string{"north": freePort(t, "udp"), "river": freePort(t, "udp"), "lake": freePort(t, "udp")}
	to := map[string]string{"north": beacon["river"], "lake": beacon["river"], "river": beacon["north"] + "," + beacon["lake"]}
	for _, c := range []community{north, river, lake} {
		serve(t, c, "--sync-listen", "127.0.0.1:0", "--beacon-listen", beacon[c.name], "--beacon-to", to[c.name], "--beacon-every", "200ms")
	}
	mustFerry(t, "send", "--data", north.data, "--from", "ada", "--to", "cy@lake", "north to lake, via river")
	mustFerry(t, "send", "--data", lake.data, "--from", "cy", "--to", "ada@north", "lake to north, via river")
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := stateOf(t, north, "ada", "north to lake, via river")
		l := stateOf(t, lake, "cy", "lake to north, via river")
		if n == "delivered" && l == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: north's message %q, lake's %q", n, l)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if m := findMessage(t, readInbox(t, lake, "cy"), "north to lake, via river"); m.State != "received" {
		t.Errorf("lake: %+v", m)
	}
	if m := findMessage(t, readInbox(t, north, "ada"), "lake to north, via river"); m.State != "received" {
		t.Errorf("north: %+v", m)
	}
}

// stateOf returns the state of the message with that body in a user's
// inbox, or "".
func stateOf(t *testing.T, c community, user, body string) string {
	t.Helper()
	var msgs []inboxEntry
	if err := json.Unmarshal([]byte(mustFerry(t, "inbox", "--data", c.data, "--user", user, "--json")), &msgs); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Body == body {
			return m.State
		}
	}
	return ""
}

// TestTwoServesSyncOnSchedule: two 'ferry serve' processes whose cards
// give their addresses sync on their own when they start, without LAN
// discovery, and deliver what waited.
func TestTwoServesSyncOnSchedule(t *testing.T) {
	root := t.TempDir()
	north, river := newCommunity(t, root, "north", "ada"), newCommunity(t, root, "river", "bob")
	addrs := map[string]string{"north": freePort(t, "tcp"), "river": freePort(t, "tcp")}
	introduceAt(t, addrs, north, river)
	mustFerry(t, "send", "--data", north.data, "--from", "ada", "--to", "bob@river", "on schedule")
	mustFerry(t, "send", "--data", river.data, "--from", "bob", "--to", "ada@north", "back on schedule")
	for _, c := range []community{north, river} {
		serve(t, c, "--sync-listen", addrs[c.name], "--discover=false", "--sync-every", "every 6h")
	}
	deadline := time.Now().Add(30 * time.Second)
	for stateOf(t, north, "ada", "on schedule") != "delivered" || stateOf(t, river, "bob", "back on schedule") != "delivered" {
		if time.Now().After(deadline) {
			t.Fatalf("north's message %q, river's %q", stateOf(t, north, "ada", "on schedule"), stateOf(t, river, "bob", "back on schedule"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(readInbox(t, river, "bob")); n != 2 {
		t.Errorf("river shows %d messages, want 2", n)
	}
}
