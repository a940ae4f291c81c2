// Command pi_memory measures what a Raspberry Pi cares about in ferry serve:
// how long it takes to start on a store of 100,000 messages and a 1 GiB
// archive, its resident memory idle, and its resident memory under the web
// inbox load of web/load_test.go (clients that read rooms and post). It is
// driven by bench/pi_memory.sh; docs/benchmarks.md ("Raspberry Pi: memory
// and start-up") has the figures.
//
//	pi_memory -ferry BIN -work DIR -tree DATA [-messages 100000] [-runs 3]
//
// The first run prepares DIR/base once: a node with the messages in 50
// rooms (through node.Post, as the load test seeds) and `ferry archive add`
// of DATA. Every run then works on DIR/run, a copy of the base (chunks and
// spool hard-linked, the database copied), so each starts from the same
// store and with a fresh setup code. Memory is read from /proc/PID/status:
// VmRSS (now) and VmHWM (peak).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"ferry/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pi_memory:", err)
		os.Exit(1)
	}
}

var (
	ferryBin = flag.String("ferry", "ferry", "the ferry binary to measure")
	work     = flag.String("work", "/tmp/ferrybench-pi", "where the prepared store and the runs live")
	tree     = flag.String("tree", "", "the folder to put into the archive (about 1 GiB); empty: no archive")
	messages = flag.Int("messages", 100000, "messages in the store")
	rooms    = flag.Int("rooms", 50, "rooms")
	runs     = flag.Int("runs", 1, "measurements")
	idleFor  = flag.Duration("idle", 15*time.Second, "how long serve sits idle before the idle reading")
	loadFor  = flag.Duration("load", 60*time.Second, "how long the load clients run")
	clients  = flag.Int("clients", 50, "concurrent load clients")
	extra    = flag.String("serve-env", "", "extra environment for serve, e.g. GOGC=50 (comma-separated)")
)

func run() error {
	flag.Parse()
	base := filepath.Join(*work, "base")
	if err := prepare(base); err != nil {
		return err
	}
	fmt.Printf("store: %s (%s)\n", base, describe(base))
	for i := range *runs {
		r, err := measure(base, filepath.Join(*work, "run"))
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("run %d: start %v; idle RSS %.1f MiB (peak %.1f); after %d logins RSS %.1f MiB (peak %.1f); load %d req (%d errors, %.0f req/s, p50 %v p95 %v): RSS at end %.1f MiB, peak %.1f MiB; after load idle RSS %.1f MiB\n",
			i+1, r.start.Round(time.Millisecond), mib(r.idleRSS), mib(r.idleHWM), *clients+1, mib(r.joinRSS), mib(r.joinHWM), r.requests, r.errors,
			float64(r.requests)/loadFor.Seconds(), r.p50.Round(time.Millisecond), r.p95.Round(time.Millisecond),
			mib(r.loadRSS), mib(r.loadHWM), mib(r.afterRSS))
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// prepare makes the base store unless it is there already.
func prepare(base string) error {
	done := filepath.Join(base, ".prepared")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	os.RemoveAll(base)
	start := time.Now()
	n, err := node.Init(base, "north", node.Options{})
	if err != nil {
		return err
	}
	if err := seed(n); err != nil {
		n.Close()
		return err
	}
	if err := n.Close(); err != nil {
		return err
	}
	fmt.Printf("seeded %d messages in %v\n", *messages, time.Since(start).Round(time.Second))
	if *tree != "" {
		start = time.Now()
		cmd := exec.Command(*ferryBin, "archive", "add", "--data", base, "--title", "bench tree", *tree)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("archive add: %w", err)
		}
		fmt.Printf("archive add took %v\n", time.Since(start).Round(time.Second))
	}
	return os.WriteFile(done, nil, 0o644)
}

// seed posts the messages as web/load_test.go does; synchronous=OFF
// while seeding, since a crash would only lose the seed.
func seed(n *node.Node) error {
	ctx := context.Background()
	db := n.DB()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`PRAGMA synchronous = OFF`); err != nil {
		return err
	}
	for _, u := range []string{"anna", "bob", "carol"} {
		if err := n.AddUser(ctx, u); err != nil {
			return err
		}
	}
	for r := range *rooms {
		if _, err := n.CreateRoom(ctx, fmt.Sprintf("room%02d", r), fmt.Sprintf("Room %d", r), "", "anna"); err != nil {
			return err
		}
	}
	words := strings.Fields("the well bridge seeds market river school harvest meeting rain goats bread solar repair clinic boat")
	for i := range *messages {
		body := fmt.Sprintf("%s %s %s, message %d", words[i%len(words)], words[(i/7)%len(words)], words[(i/13)%len(words)], i)
		d := node.Draft{From: []string{"anna", "bob", "carol"}[i%3], Room: fmt.Sprintf("room%02d", i%*rooms), Body: body}
		if _, _, err := n.Post(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// describe sums the store's size by top-level entry.
func describe(dir string) string {
	sizes := map[string]int64{}
	var files int
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		sizes[top] += info.Size()
		files++
		return nil
	})
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range sizes {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", k, mib(sizes[k])))
	}
	return fmt.Sprintf("%d files: %s", files, strings.Join(parts, ", "))
}

// copyStore copies base to dst: the database files for real, everything
// else (spool, archive chunks, keys: never changed in place) as hard links.
func copyStore(base, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		if !strings.HasPrefix(d.Name(), "ferry.db") {
			return os.Link(p, out)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

type result struct {
	start                              time.Duration
	idleRSS, idleHWM, loadRSS, loadHWM int64
	joinRSS, joinHWM                   int64 // after the admin and members logged in
	afterRSS                           int64
	requests, errors                   int
	p50, p95                           time.Duration
}

var (
	listenRE = regexp.MustCompile(`serving \S+ web inbox on (http://[0-9.:]+)/`)
	codeRE   = regexp.MustCompile(`setup code: ([0-9A-Z-]{19})`)
)

func measure(base, dir string) (*result, error) {
	if err := copyStore(base, dir); err != nil {
		return nil, err
	}
	// Let the copy reach the disk, so that serve does not pay for it.
	syscall.Sync()
	r := &result{}
	cmd := exec.Command(*ferryBin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--sync-listen", "off", "--discover=false", "--usb-watch", "off")
	cmd.Env = append(os.Environ(), "FERRY_DATA=")
	if *extra != "" {
		cmd.Env = append(cmd.Env, strings.Split(*extra, ",")...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	var addr, code string
	for sc.Scan() {
		line := sc.Text()
		if m := listenRE.FindStringSubmatch(line); m != nil && addr == "" {
			addr = m[1]
			r.start = time.Since(t0)
		}
		if m := codeRE.FindStringSubmatch(line); m != nil {
			code = m[1]
			break
		}
	}
	if addr == "" || code == "" {
		return nil, errors.New("serve printed no address or setup code")
	}
	go io.Copy(io.Discard, stderr)
	pid := cmd.Process.Pid

	time.Sleep(*idleFor)
	r.idleRSS, r.idleHWM = memory(pid)

	admin := newClient(addr)
	if err := admin.setup(code); err != nil {
		return nil, err
	}
	cs := make([]*client, *clients)
	for i := range cs {
		link, err := admin.invite()
		if err != nil {
			return nil, err
		}
		cs[i] = newClient(addr)
		if err := cs[i].join(link, fmt.Sprintf("user%02d", i)); err != nil {
			return nil, err
		}
	}
	r.joinRSS, r.joinHWM = memory(pid)
	ctx, cancel := context.WithTimeout(context.Background(), *loadFor)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				room := fmt.Sprintf("room%02d", rng.IntN(*rooms))
				t := time.Now()
				var err error
				switch k := rng.IntN(10); {
				case k == 0:
					_, err = c.do("POST", "/rooms/"+room, url.Values{"body": {fmt.Sprintf("load message %d from client %d", rng.Int(), i)}})
				case k == 1:
					_, err = c.do("GET", "/rooms", nil)
				default:
					_, err = c.do("GET", "/rooms/"+room, nil)
				}
				d := time.Since(t)
				if ctx.Err() != nil {
					break
				}
				mu.Lock()
				if err != nil {
					r.errors++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.loadRSS, r.loadHWM = memory(pid)
	slices.Sort(lat)
	r.requests = len(lat)
	if len(lat) > 0 {
		r.p50, r.p95 = lat[len(lat)/2], lat[len(lat)*95/100]
	}
	time.Sleep(*idleFor)
	r.afterRSS, _ = memory(pid)
	return r, nil
}

var vmRE = regexp.MustCompile(`(VmRSS|VmHWM):\s+(\d+) kB`)

// memory reads VmRSS and VmHWM of a process, in bytes.
func memory(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, m := range vmRE.FindAllSubmatch(b, -1) {
		kb, _ := strconv.ParseInt(string(m[2]), 10, 64)
		if string(m[1]) == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// client is a browser without JavaScript, over real HTTP.
type client struct {
	base string
	c    *http.Client
	csrf string
}

func newClient(base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{base: base, c: &http.Client{Jar: jar, Transport: &http.Transport{MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var (
	formToken  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	inviteLink = regexp.MustCompile(`/invite/[0-9A-Z-]{19}`)
)

// do makes one request; a status other than 200 or 303 is an error.
func (h *client) do(method, path string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		if form.Get("csrf") == "" {
			form.Set("csrf", h.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		return "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if h.csrf == "" || method == "GET" && (path == "/account" || path == "/setup" || strings.HasPrefix(path, "/invite/")) {
		if m := formToken.FindSubmatch(b); m != nil {
			h.csrf = string(m[1])
		}
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
		return string(b), fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return string(b), nil
}

func (h *client) setup(code string) error {
	if _, err := h.do("GET", "/setup", nil); err != nil {
		return err
	}
	if _, err := h.do("POST", "/setup", url.Values{"code": {code}, "user": {"admin"}, "password": {"admin password"}, "confirm": {"admin password"}}); err != nil {
		return err
	}
	_, err := h.do("GET", "/account", nil)
	return err
}

func (h *client) invite() (string, error) {
	body, err := h.do("POST", "/admin/invites", url.Values{"role": {"member"}})
	if err != nil {
		return "", err
	}
	link := inviteLink.FindString(body)
	if link == "" {
		return "", errors.New("no invitation link on the page")
	}
	return link, nil
}

func (h *client) join(link, user string) error {
	if _, err := h.do("GET", link, nil); err != nil {
		return err
	}
	if _, err := h.do("POST", link, url.Values{"user": {user}, "password": {"password " + user}, "confirm": {"password " + user}}); err != nil {
		return err
	}
	_, err := h.do("GET", "/account", nil)
	return err
}
