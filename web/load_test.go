//go:build loadtest

package web_test

// The load benchmark of docs/benchmarks.md: a store of 100,000 messages
// in 50 rooms, served by the real `ferry serve` on loopback to 50
// concurrent clients that read rooms and post for 60 seconds. Run it with
//
//	go test -tags loadtest -run TestLoad -v -timeout 30m ./web
//
// (-load.duration, -load.clients, -load.messages change the figures).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/node"
)

var (
	loadDuration = flag.Duration("load.duration", 60*time.Second, "how long the clients run")
	loadClients  = flag.Int("load.clients", 50, "concurrent clients")
	loadMessages = flag.Int("load.messages", 100000, "messages in the store")
	loadRooms    = flag.Int("load.rooms", 50, "rooms")
	loadSeed     = flag.String("load.seed", "", "keep the seeded store in this folder and reuse it when it is there")
)

func TestLoad(t *testing.T) {
	data := filepath.Join(t.TempDir(), "north")
	start := time.Now()
	if *loadSeed != "" {
		if _, err := os.Stat(*loadSeed); err != nil {
			seed(t, *loadSeed, *loadRooms, *loadMessages)
		}
		if err := os.CopyFS(data, os.DirFS(*loadSeed)); err != nil {
			t.Fatal(err)
		}
	} else {
		seed(t, data, *loadRooms, *loadMessages)
	}
	t.Logf("seeded %d messages in %d rooms in %v", *loadMessages, *loadRooms, time.Since(start).Round(time.Millisecond))

	srv := startServerIn(t, data, "north")
	admin := newHTTPClient(t, srv.url)
	admin.setup(srv.code)
	clients := make([]*httpClient, *loadClients)
	for i := range clients {
		clients[i] = newHTTPClient(t, srv.url)
		clients[i].join(admin.invite(), fmt.Sprintf("user%02d", i))
	}

	// Page weight of the inbox, on the first client.
	page := clients[0].getSize("/rooms/room00")
	assets := 0
	for _, a := range []string{"/static/style.css", "/static/app.js", "/static/icon.svg"} {
		assets += clients[0].getSize(a)
	}
	t.Logf("room page %d bytes + assets %d bytes = %d bytes", page, assets, page+assets)

	cpu0 := cpuTime(t, srv.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), *loadDuration)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var errs, posts, reads int
	var wg sync.WaitGroup
	var done atomic.Int64
	var postLat []time.Duration
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			var my []time.Duration
			var myErrs, myPosts, myReads int
			for ctx.Err() == nil {
				room := fmt.Sprintf("room%02d", rng.IntN(*loadRooms))
				var d time.Duration
				var err error
				switch k := rng.IntN(10); {
				case k == 0:
					d, err = c.timed("POST", "/rooms/"+room, url.Values{"body": {fmt.Sprintf("load message %d from client %d", rng.Int(), i)}})
					myPosts++
					mu.Lock()
					postLat = append(postLat, d)
					mu.Unlock()
				case k == 1:
					d, err = c.timed("GET", "/rooms", nil)
					myReads++
				default:
					d, err = c.timed("GET", "/rooms/"+room, nil)
					myReads++
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					myErrs++
					t.Logf("client %d: %v", i, err)
					continue
				}
				my = append(my, d)
				done.Add(1)
			}
			mu.Lock()
			lat = append(lat, my...)
			errs, posts, reads = errs+myErrs, posts+myPosts, reads+myReads
			mu.Unlock()
		}()
	}
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				n := done.Load()
				mu.Lock()
				pl := slices.Clone(postLat)
				postLat = postLat[:0]
				mu.Unlock()
				slices.Sort(pl)
				if len(pl) > 0 {
					t.Logf("posts in the last 10 s: %d, p50 %v, p95 %v", len(pl), pl[len(pl)/2], pl[len(pl)*95/100])
				}
				wal, _ := os.Stat(filepath.Join(data, "ferry.db-wal"))
				var walSize int64
				if wal != nil {
					walSize = wal.Size()
				}
				t.Logf("progress: %d requests done, WAL %d MB", n, walSize>>20)
			}
		}
	}()
	wg.Wait()
	rss := peakRSS(t, srv.cmd.Process.Pid)
	cpu := cpuTime(t, srv.cmd.Process.Pid) - cpu0
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)].Round(100 * time.Microsecond) }
	report := fmt.Sprintf("%d clients, %v, %d messages in %d rooms: %d requests (%d reads, %d posts), %.0f req/s\n"+
		"latency p50 %v, p95 %v, p99 %v, max %v; errors %d; server peak RSS %.1f MB; room page %d B + assets %d B\n"+
		"server CPU %.1f s, %.2f ms per request\n",
		*loadClients, *loadDuration, *loadMessages, *loadRooms, len(lat), reads, posts, float64(len(lat))/loadDuration.Seconds(),
		pct(.50), pct(.95), pct(.99), lat[len(lat)-1].Round(100*time.Microsecond), errs, float64(rss)/(1<<20), page, assets,
		cpu.Seconds(), float64(cpu.Microseconds())/1000/float64(len(lat)))
	t.Log(report)
	os.MkdirAll("../artifacts", 0o755)
	os.WriteFile("../artifacts/load.txt", []byte(report), 0o644)
	if errs > 0 {
		t.Errorf("%d errors", errs)
	}
}

// seed makes a node with rooms and messages, through the node's API.
// Writes are not synced while seeding: a crash would only lose the seed.
func seed(t *testing.T, dir string, rooms, messages int) {
	t.Helper()
	n, err := node.Init(dir, "north", node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	db := n.DB()
	// Two connections: the node keeps one for PRAGMA data_version (its
	// room cache), the other does the writes. The first room made opens
	// the cache's; synchronous = OFF then goes to the writer's.
	db.SetMaxOpenConns(2)
	ctx := context.Background()
	for _, u := range []string{"anna", "bob", "carol"} {
		if err := n.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for r := range rooms {
		if _, err := n.CreateRoom(ctx, fmt.Sprintf("room%02d", r), fmt.Sprintf("Room %d", r), "", "anna"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`PRAGMA synchronous = OFF`); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("the well bridge seeds market river school harvest meeting rain goats bread solar repair clinic boat")
	for i := range messages {
		body := fmt.Sprintf("%s %s %s, message %d", words[i%len(words)], words[(i/7)%len(words)], words[(i/13)%len(words)], i)
		d := node.Draft{From: []string{"anna", "bob", "carol"}[i%3], Room: fmt.Sprintf("room%02d", i%rooms), Body: body}
		if _, _, err := n.Post(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
}

// startServerIn runs `ferry serve` on an existing data directory.
func startServerIn(t *testing.T, data, name string) *server {
	t.Helper()
	s := newServer(t, data)
	s.start(t, "serve", "--data", data, "--listen", "127.0.0.1:0", "--sync-listen", "off", "--discover=false")
	return s
}

// httpClient is a browser without JavaScript, over real HTTP.
type httpClient struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newHTTPClient(t *testing.T, base string) *httpClient {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	return &httpClient{t: t, base: base, c: &http.Client{Jar: jar, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var formToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (h *httpClient) do(method, path string, form url.Values) (*http.Response, string) {
	h.t.Helper()
	resp, body, err := h.request(method, path, form)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, body
}

func (h *httpClient) request(method, path string, form url.Values) (*http.Response, string, error) {
	var r io.Reader
	if form != nil {
		if form.Get("csrf") == "" {
			form.Set("csrf", h.csrf)
		}
		r = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.base+path, r)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if h.csrf == "" || method == "GET" && (path == "/account" || path == "/setup" || strings.HasPrefix(path, "/invite/")) {
		// Only where a token is new: the clients spare the CPU they
		// share with the server.
		if m := formToken.FindSubmatch(b); m != nil {
			h.csrf = string(m[1])
		}
	}
	return resp, string(b), err
}

// timed makes one request and returns how long it took; a status other
// than 200 or 303 is an error.
func (h *httpClient) timed(method, path string, form url.Values) (time.Duration, error) {
	start := time.Now()
	resp, _, err := h.request(method, path, form)
	d := time.Since(start)
	if err != nil {
		return d, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
		return d, fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	return d, nil
}

func (h *httpClient) getSize(path string) int {
	_, body := h.do("GET", path, nil)
	return len(body)
}

func (h *httpClient) setup(code string) {
	h.do("GET", "/setup", nil)
	resp, body := h.do("POST", "/setup", url.Values{"code": {code}, "user": {"admin"}, "password": {"admin password"}, "confirm": {"admin password"}})
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("setup: %d\n%s", resp.StatusCode, body)
	}
	h.do("GET", "/account", nil)
}

var inviteLink = regexp.MustCompile(`/invite/[0-9A-Z-]{19}`)

func (h *httpClient) invite() string {
	_, body := h.do("POST", "/admin/invites", url.Values{"role": {"member"}})
	link := inviteLink.FindString(body)
	if link == "" {
		h.t.Fatalf("no invitation link:\n%s", body)
	}
	return link
}

func (h *httpClient) join(link, user string) {
	h.do("GET", link, nil)
	resp, body := h.do("POST", link, url.Values{"user": {user}, "password": {"password " + user}, "confirm": {"password " + user}})
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("join %s: %d\n%s", user, resp.StatusCode, body)
	}
	h.do("GET", "/account", nil)
}

// cpuTime reads the CPU time (user and system) a process has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 10 ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// peakRSS reads a process's peak resident set size (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmHWM")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}
