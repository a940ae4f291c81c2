package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/lora"
	"ferry/lora/emulator"
)

// fastRadio is SF7/500 kHz in the 10 % sub-band: a full frame takes
// about 100 ms, so that tests on the real clock take seconds.
var fastRadio = []string{"--sf", "7", "--bw", "500000", "--region", "eu868-10", "--freq", "869525000"}

// radioPair opens two emulated modems of protocol proto on one channel,
// behind ptys, and returns their tty paths.
func radioPair(t *testing.T, proto emulator.Protocol) (string, string) {
	t.Helper()
	air := emulator.New(emulator.Config{})
	var paths []string
	for _, name := range []string{"a", "b"} {
		p, err := air.OpenPTY(name, proto, lora.Params{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		paths = append(paths, p.Path)
	}
	return paths[0], paths[1]
}

// radioFlags returns the LoRa flags for one end, with prefix ("" for
// 'ferry lora', "lora-" for serve).
func radioFlags(prefix string, proto emulator.Protocol, port string) []string {
	args := []string{"--" + prefix + "port", port, "--" + prefix + "modem", string(proto)}
	if proto == emulator.RF95 {
		// Mode 1 is SF7/500 kHz.
		return append(args, "--"+prefix+"rf95-mode", "1", "--"+prefix+"region", "eu868-10", "--"+prefix+"freq", "869525000")
	}
	for i := 0; i < len(fastRadio); i += 2 {
		args = append(args, "--"+prefix+fastRadio[i][2:], fastRadio[i+1])
	}
	return args
}

// TestLoRaCommand runs 'ferry lora' at both ends of emulated radios, for
// each modem family: the real binary opens the ttys with tarm/serial,
// configures the modems and syncs; a second contact brings the receipt
// back, and a message arrives once.
func TestLoRaCommand(t *testing.T) {
	for _, proto := range []emulator.Protocol{emulator.RNode, emulator.RF95} {
		t.Run(string(proto), func(t *testing.T) {
			root := t.TempDir()
			north, river := newCommunity(t, root, "north", "alice"), newCommunity(t, root, "river", "bob")
			introduce(t, north, river)
			mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "over the air")
			mustFerry(t, "send", "--data", river.data, "--from", "bob", "--to", "alice@north", "and back")
			pa, pb := radioPair(t, proto)
			for contact := range 2 {
				var wg sync.WaitGroup
				var ra, rb result
				wg.Add(2)
				go func() {
					defer wg.Done()
					ra = ferry(t, append([]string{"lora", "--data", north.data, "--first", "--idle", "30s"}, radioFlags("", proto, pa)...)...)
				}()
				go func() {
					defer wg.Done()
					rb = ferry(t, append([]string{"lora", "--data", river.data, "--idle", "30s"}, radioFlags("", proto, pb)...)...)
				}()
				wg.Wait()
				if ra.code != 0 || rb.code != 0 {
					t.Fatalf("contact %d: north exit %d:\n%s%s\nriver exit %d:\n%s%s", contact, ra.code, ra.stdout, ra.stderr, rb.code, rb.stdout, rb.stderr)
				}
				if !strings.Contains(ra.stderr+ra.stdout, "peer: river") || !strings.Contains(rb.stderr+rb.stdout, "peer: north") {
					t.Fatalf("contact %d: no peer in the reports:\n%s%s\n%s%s", contact, ra.stdout, ra.stderr, rb.stdout, rb.stderr)
				}
				if contact == 0 && !strings.Contains(ra.stderr, "lora: "+string(proto)+" on "+pa) {
					t.Errorf("north did not describe its radio:\n%s", ra.stderr)
				}
				time.Sleep(500 * time.Millisecond) // the last FIN lands before the next contact
			}
			if got := stateOf(t, north, "alice", "over the air"); got != "delivered" {
				t.Errorf("alice's message is %q, want delivered", got)
			}
			if got := stateOf(t, river, "bob", "and back"); got != "delivered" {
				t.Errorf("bob's message is %q, want delivered", got)
			}
			if n := strings.Count(mustFerry(t, "inbox", "--data", river.data, "--user", "bob"), "over the air"); n != 1 {
				t.Errorf("bob sees alice's message %d times", n)
			}
		})
	}

	// Bad settings are refused before any port is opened.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--modem", "hayes"}, "want rnode or rf95"},
		{[]string{"--region", "mars"}, "unknown region"},
		{[]string{"--region", "us915", "--freq", "915000000", "--sf", "10"}, "dwell"},
		{[]string{"--port", "/nonexistent/tty"}, "open /nonexistent/tty"},
	} {
		dir := t.TempDir()
		mustFerry(t, "init", "--data", dir, "--name", "lake")
		r := ferry(t, append([]string{"lora", "--data", dir}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("ferry lora %v: exit %d, %q; want an error saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

var (
	webAddrRE   = regexp.MustCompile(`web inbox on http://([^/]+)/`)
	setupCodeRE = regexp.MustCompile(`setup code: ([0-9A-Z-]+)`)
	csrfRE      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// TestServeOverLoRa: two 'ferry serve' processes, each with an emulated
// RNode on a pty, one with --lora-first. A message from north reaches
// river over the radio and its receipt comes back with no command run,
// and river's network page shows the radio's RSSI, SNR and airtime.
func TestServeOverLoRa(t *testing.T) {
	root := t.TempDir()
	north, river := newCommunity(t, root, "north", "alice"), newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "over the radio")
	pa, pb := radioPair(t, emulator.RNode)
	common := []string{"--sync-listen", "127.0.0.1:0", "--discover=false", "--lora-idle", "30s"}
	rs := serve(t, river, append(common, radioFlags("lora-", emulator.RNode, pb)...)...)
	ns := serve(t, north, append(append(common, "--lora-first", "--lora-every", "2s"), radioFlags("lora-", emulator.RNode, pa)...)...)

	deadline := time.Now().Add(90 * time.Second)
	for stateOf(t, north, "alice", "over the radio") != "delivered" {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt over LoRa within 90 s\nnorth:\n%s\nriver:\n%s", ns.log(), rs.log())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := strings.Count(mustFerry(t, "inbox", "--data", river.data, "--user", "bob"), "over the radio"); n != 1 {
		t.Errorf("bob sees the message %d times", n)
	}

	// The network page, as river's first admin sees it.
	var addr, code string
	for addr == "" || code == "" {
		if m := webAddrRE.FindStringSubmatch(rs.log()); m != nil {
			addr = m[1]
		}
		if m := setupCodeRE.FindStringSubmatch(rs.log()); m != nil {
			code = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no web address or setup code:\n%s", rs.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) string {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
		}
		return string(b)
	}
	m := csrfRE.FindStringSubmatch(get("/setup"))
	if m == nil {
		t.Fatal("no form token on /setup")
	}
	pw := "a long enough password"
	resp, err := c.PostForm("http://"+addr+"/setup", url.Values{"csrf": {m[1]}, "code": {code}, "user": {"ada"},
		"display": {"Ada"}, "password": {pw}, "confirm": {pw}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("setup: %v %v", resp, err)
	}
	resp.Body.Close()
	// The radio's record of its last session lands when river's side of
	// it ends, which may be after north saw the receipt.
	page := get("/admin/peers")
	for !strings.Contains(page, "last peer: north") && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		page = get("/admin/peers")
	}
	for _, want := range []string{"LoRa radios", "rnode on " + pb, "SF7, 500000 Hz", "RSSI ", " dBm, SNR ", "in the last hour", "last peer: north"} {
		if !strings.Contains(page, want) {
			t.Errorf("river's network page lacks %q", want)
		}
	}
	if t.Failed() {
		i := strings.Index(page, "LoRa radios")
		t.Logf("page from the radios on:\n%s", page[max(i, 0):])
	}
	// The radio counts airtime against the 10 % budget: more than nothing.
	if regexp.MustCompile(`>0\.0 s of 360 s`).MatchString(page) {
		t.Errorf("river's radio shows no airtime used")
	}
}
