package web_test

// End-to-end tests in a real browser: Debian's chromium, driven by
// chromedp, against real `ferry serve` processes. They fail (never skip)
// when chromium is missing: `make test` installs it.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// screenshots is where the tests leave pictures of the main pages, from
// the repository's root (README.md names it).
const screenshots = "../artifacts/screenshots"

// ferryBin builds the real ferry binary once, when a test first needs it.
var ferryBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-web-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, "ferry/cmd/ferry").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building ferry: %v\n%s", err, out)
	}
	return bin, nil
})

// binDir holds the binary; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ferryPath returns the ferry binary, failing the test if it does not
// build.
func ferryPath(t testing.TB) string {
	t.Helper()
	bin, err := ferryBin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// ferry runs the ferry command and returns its output, failing the test
// unless it exits 0.
func ferry(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(ferryPath(t), args...)
	cmd.Env = append(os.Environ(), "FERRY_DATA=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ferry %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// server is a running `ferry serve`.
type server struct {
	url, code, data string
	cmd             *exec.Cmd
	log             *syncBuffer
	exited          chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	listenRE = regexp.MustCompile(`serving \S+ web inbox on (http://[0-9.:]+)/`)
	codeRE   = regexp.MustCompile(`setup code: ([0-9A-Z-]{19})`)
)

// startServer runs `ferry serve` on an empty data directory, and stops it
// (SIGTERM, checking a clean exit) when the test ends. Live links are off:
// bundles move only when the test carries them.
func startServer(t *testing.T, name string) *server {
	t.Helper()
	s := newServer(t, filepath.Join(t.TempDir(), name))
	s.start(t, "serve", "--data", s.data, "--name", name, "--listen", "127.0.0.1:0", "--sync-listen", "off", "--discover=false")
	return s
}

func newServer(t *testing.T, data string) *server {
	return &server{data: data, log: &syncBuffer{}, exited: make(chan error, 1)}
}

// start runs ferry with args and waits for the address and the setup
// code that serve prints.
func (s *server) start(t *testing.T, args ...string) {
	t.Helper()
	s.cmd = exec.Command(ferryPath(t), args...)
	s.cmd.Env = append(os.Environ(), "FERRY_DATA=")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.log.Write([]byte(sc.Text() + "\n"))
			select {
			case lines <- sc.Text():
			default:
			}
		}
		s.exited <- s.cmd.Wait()
	}()
	deadline := time.After(time.Minute) // only bounds a hang
	for s.url == "" || s.code == "" {
		select {
		case l := <-lines:
			if m := listenRE.FindStringSubmatch(l); m != nil {
				s.url = m[1]
			}
			if m := codeRE.FindStringSubmatch(l); m != nil {
				s.code = m[1]
			}
		case <-deadline:
			s.cmd.Process.Kill()
			t.Fatalf("ferry serve printed no address and setup code:\n%s", s.log)
		}
	}
	t.Cleanup(func() { s.stop(t) })
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("ferry serve exited with %v after SIGTERM\n%s", err, s.log)
		}
	case <-time.After(time.Minute): // only bounds a hang
		s.cmd.Process.Kill()
		t.Errorf("ferry serve did not stop within a minute of SIGTERM")
	}
	s.cmd = nil
}

// newBrowser starts chromium for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is needed for the browser tests but %s is missing (%v): run `make test`, which installs it, or apt-get install chromium", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(360, 740),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first Run starts the browser: no timeout on its context.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// tab is a browser tab with its own cookies (a browser context), as a
// phone 360 pixels wide, with JavaScript on or off.
type tab struct {
	t    *testing.T
	ctx  context.Context
	js   bool
	name string
}

func newTab(t *testing.T, b context.Context, name string, js bool) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &tab{t: t, ctx: ctx, js: js, name: name}
	steps := []chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile)}
	if !js {
		steps = append(steps, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// stepTimeout bounds one step of a tab: only a hang, on a loaded machine.
const stepTimeout = 45 * time.Second

func (p *tab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, stepTimeout)
}

// open loads a page and returns its HTTP status.
func (p *tab) open(url string) int64 {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil || resp == nil {
		p.t.Fatalf("%s: open %s: %v", p.name, url, err)
	}
	return resp.Status
}

// fill sets form fields by CSS selector.
func (p *tab) fill(fields ...string) {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	var steps []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(fields); i += 2 {
		steps = append(steps, chromedp.SetValue(chromedp.CSS(fields[i]), fields[i+1]))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: fill %v: %v", p.name, fields, err)
	}
}

// submit clicks a button and waits for the page it leads to; it returns
// that page's HTTP status.
func (p *tab) submit(button string) int64 {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
	if err != nil || resp == nil {
		p.t.Fatalf("%s: submit %s: %v", p.name, button, err)
	}
	return resp.Status
}

func (p *tab) text(sel string) string {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	// Read in one evaluation: a live update may swap the element between
	// finding it and reading it, and a detached element reads as "".
	err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)))
	var s string
	if err == nil {
		s, err = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function () { var e = document.querySelector(%q); return e ? e.innerText : ""; })()`, sel)))
	}
	if err != nil {
		p.t.Fatalf("%s: text of %s: %v", p.name, sel, err)
	}
	return strings.TrimSpace(s)
}

// count counts the elements a selector finds.
func (p *tab) count(sel string) int {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		p.t.Fatalf("%s: count %s: %v", p.name, sel, err)
	}
	return n
}

// waitFor waits for an element to appear without reloading: with
// JavaScript on, the page's live updates must bring it.
func (p *tab) waitFor(sel string, within time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, within)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("%s: %s did not appear within %v: %v", p.name, sel, within, err)
	}
}

// click clicks an element that leads nowhere (a summary, a checkbox).
func (p *tab) click(sel string) {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("%s: click %s: %v", p.name, sel, err)
	}
}

// reload reloads the page, as a person does without live updates.
func (p *tab) reload() {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		p.t.Fatalf("%s: reload: %v", p.name, err)
	}
}

func (p *tab) url() string {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	return u
}

// shot saves a screenshot of the whole page.
func (p *tab) shot(name string) {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.MkdirAll(screenshots, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshots, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// download clicks a download link and returns the file's bytes.
func (p *tab) download(link string) []byte {
	p.t.Helper()
	dir := p.t.TempDir()
	ctx, cancel := p.step()
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	on := true
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &on,
			BrowserContextID: chromedp.FromContext(p.ctx).BrowserContextID,
		})
		return err
	}), chromedp.Click(chromedp.CSS(link)))
	if err != nil {
		p.t.Fatalf("%s: download %s: %v", p.name, link, err)
	}
	for ev, err := range progress {
		if err != nil {
			p.t.Fatalf("%s: download %s: %v", p.name, link, err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			p.t.Fatalf("%s: download %s canceled", p.name, link)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				p.t.Fatal(err)
			}
			return b
		}
	}
	return nil
}

// makeAdmin sets up a fresh server with the console code.
func makeAdmin(t *testing.T, p *tab, s *server, user, shot string) {
	t.Helper()
	if st := p.open(s.url + "/"); st != 200 || !strings.HasSuffix(p.url(), "/setup") {
		t.Fatalf("a fresh server does not lead to /setup: %d %s", st, p.url())
	}
	p.fill("#code", s.code, "#user", user, "#display", strings.ToUpper(user[:1])+user[1:], "#password", "secret-"+user, "#confirm", "secret-"+user)
	if shot != "" {
		p.shot(shot)
	}
	if st := p.submit("form button[type=submit]"); st != 200 || !strings.Contains(p.url(), "/admin") {
		t.Fatalf("setup: %d %s", st, p.url())
	}
}

// exchangeCards makes two servers trust each other, through their admin
// pages.
func exchangeCards(t *testing.T, a, b *tab, as, bs *server) {
	t.Helper()
	a.open(as.url + "/admin/peers")
	cardA := a.text("#card")
	b.open(bs.url + "/admin/peers")
	cardB := b.text("#card")
	b.fill("#pcard", cardA)
	if st := b.submit("form[action='/admin/peers'] button"); st != 200 {
		t.Fatalf("adding a peer: %d", st)
	}
	a.open(as.url + "/admin/peers")
	a.fill("#pcard", cardB)
	if st := a.submit("form[action='/admin/peers'] button"); st != 200 {
		t.Fatalf("adding a peer: %d", st)
	}
}

// invite makes an invitation as an admin and returns its link.
func invite(t *testing.T, admin *tab, s *server, shot string) string {
	t.Helper()
	admin.open(s.url + "/admin")
	if st := admin.submit("form[action='/admin/invites'] button"); st != 200 {
		t.Fatalf("invite: %d", st)
	}
	if shot != "" {
		admin.shot(shot)
	}
	if admin.count("img.qr[src^='data:image/png']") != 1 {
		t.Error("the invitation has no QR code")
	}
	return admin.text("#link")
}

// carry moves bundles from one node to the other with `ferry export` and
// `ferry import`, while both serve.
func carry(t *testing.T, from, to *server, toName string) {
	t.Helper()
	stick := t.TempDir()
	ferry(t, "export", "--data", from.data, "--to", toName, "--out", stick)
	ferry(t, "import", "--data", to.data, stick)
}

// TestBrowserFlows runs the flows in chromium, with JavaScript on
// and off: setup with the console code, an invitation, a post in a room,
// a direct message to a user of another node that turns delivered as
// bundles are carried by `ferry export`/`import`, search, and a file
// uploaded and downloaded.
func TestBrowserFlows(t *testing.T) {
	b := newBrowser(t)
	north, river := startServer(t, "north"), startServer(t, "river")
	ada := newTab(t, b, "ada (north admin)", true)
	rio := newTab(t, b, "rio (river admin)", true)
	makeAdmin(t, ada, north, "ada", "setup")
	ada.shot("admin")
	makeAdmin(t, rio, river, "rio", "")
	exchangeCards(t, ada, rio, north, river)
	ada.open(north.url + "/admin/peers")
	ada.shot("peers")
	// Both communities share their general rooms with each other.
	for _, side := range []struct {
		admin *tab
		s     *server
		peer  string
	}{{ada, north, "river"}, {rio, river, "north"}} {
		side.admin.open(side.s.url + "/rooms/general")
		side.admin.click("details summary")
		side.admin.click("input[name=share][value=" + side.peer + "]")
		if st := side.admin.submit("form[action='/admin/rooms/general'] button"); st != 200 {
			t.Fatalf("sharing the room: %d", st)
		}
	}

	for _, js := range []bool{true, false} {
		mode := map[bool]string{true: "js", false: "nojs"}[js]
		t.Run(mode, func(t *testing.T) {
			user := map[bool]string{true: "mia", false: "noor"}[js]
			link := invite(t, ada, north, map[bool]string{true: "invite"}[js])
			m := newTab(t, b, user, js)
			if st := m.open(link); st != 200 {
				t.Fatalf("invitation page: %d", st)
			}
			m.fill("#user", user, "#display", strings.ToUpper(user[:1])+user[1:], "#password", "pass-"+user, "#confirm", "pass-"+user)
			if st := m.submit("form button[type=submit]"); st != 200 || !strings.Contains(m.url(), "/rooms") {
				t.Fatalf("joining: %d %s", st, m.url())
			}
			if ran := m.count("html.js"); ran != map[bool]int{true: 1, false: 0}[js] {
				t.Fatalf("the page script ran %d times with JavaScript %s", ran, mode)
			}
			if !js {
				m.shot("rooms-nojs")
			}

			// A post in the general room.
			post := "hello from " + user + ", the well is fixed"
			m.open(north.url + "/rooms/general")
			m.fill("#body", post)
			if st := m.submit("#compose button[type=submit]"); st != 200 {
				t.Fatalf("posting: %d", st)
			}
			if got := m.text("#messages .msg:last-child .body"); got != post {
				t.Errorf("the room's last message is %q, want %q", got, post)
			}

			// A direct message to rio@river.
			dm := "dear rio, " + user + " here: seeds for the " + mode + " garden"
			m.open(north.url + "/messages")
			m.fill("#to", "rio@river")
			if st := m.submit("form[action='/messages'] button"); st != 200 || !strings.HasSuffix(strings.Split(m.url(), "#")[0], "/messages/rio@river") {
				t.Fatalf("opening the conversation: %d %s", st, m.url())
			}
			// With a file attached, which travels to river in the bundle.
			attached := append([]byte("seed list "+mode+"\x00\xff\xfe\n"), bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000)...)
			attPath := filepath.Join(t.TempDir(), "seeds-"+mode+".bin")
			if err := os.WriteFile(attPath, attached, 0o644); err != nil {
				t.Fatal(err)
			}
			m.fill("#body", dm)
			ctx, cancel := m.step()
			err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#compose input[type=file]"), []string{attPath}))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			m.submit("#compose button[type=submit]")
			if st := m.text("#messages .msg:last-child .state"); !strings.Contains(st, "queued") {
				t.Errorf("a new message to river: state %q, want queued", st)
			}
			refresh := func(sel string) {
				t.Helper()
				if js {
					m.waitFor(sel, stepTimeout) // live, by server-sent events
				} else {
					m.reload()
					if m.count(sel) == 0 {
						t.Fatalf("%s not on the page after a reload", sel)
					}
				}
			}
			stick := t.TempDir()
			ferry(t, "export", "--data", north.data, "--to", "river", "--out", stick)
			refresh("#messages .msg:last-child [data-state=carried]")
			ferry(t, "import", "--data", river.data, stick)
			carry(t, river, north, "north")
			refresh("#messages .msg:last-child [data-state=delivered]")
			if st := m.text("#messages .msg:last-child .state"); !strings.Contains(st, "delivered to river") || !strings.Contains(st, "carried by file") {
				t.Errorf("after the receipt: state %q", st)
			}
			if js {
				m.shot("conversation")
				m.open(north.url + "/messages")
				m.shot("messages")
			}
			rio.open(river.url + "/messages/" + user + "@north")
			if got := rio.text("#messages .msg:last-child .body"); got != dm {
				t.Errorf("rio at river reads %q, want %q", got, dm)
			}
			if got := rio.download("#messages .msg:last-child a.att"); !bytes.Equal(got, attached) {
				t.Errorf("rio at river downloads %d bytes, want the %d bytes attached at north", len(got), len(attached))
			}
			// The post in the shared room went to river in the same bundle.
			rio.open(river.url + "/rooms/general")
			if got := rio.text("#messages"); !strings.Contains(got, post) {
				t.Errorf("river's general room lacks %q: %q", post, got)
			}
			m.open(north.url + "/rooms/general")
			if st := m.text("#messages .msg:last-child .state"); !strings.Contains(st, "delivered to river") {
				t.Errorf("the shared room post: state %q, want delivered to river", st)
			}

			// Search finds the message.
			m.open(north.url + "/search?q=" + mode + "+gard")
			if got := m.text("#hits"); !strings.Contains(got, "seeds for the "+mode+" garden") {
				t.Errorf("search: %q", got)
			}
			if js {
				m.shot("search")
			}

			// A file, up and down.
			content := []byte("minutes of the " + mode + " meeting\n")
			path := filepath.Join(t.TempDir(), "minutes-"+mode+".txt")
			os.WriteFile(path, content, 0o644)
			m.open(north.url + "/files")
			ctx, cancel = m.step()
			err = chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{path}))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if st := m.submit("form[action='/files/upload'] button"); st != 200 {
				t.Fatalf("upload: %d", st)
			}
			if got := m.text("#files"); !strings.Contains(got, "minutes-"+mode+".txt") {
				t.Errorf("the file list after the upload: %q", got)
			}
			if js {
				m.shot("files")
			}
			m.click("#files details summary")
			if got := m.download("#files details a[download]"); !bytes.Equal(got, content) {
				t.Errorf("downloaded %q, want %q", got, content)
			}
			if js {
				m.open(north.url + "/rooms")
				m.shot("rooms")
				m.open(north.url + "/rooms/general")
				m.shot("room")
				m.open(north.url + "/account")
				m.shot("account")
			}
		})
	}
	// A folder river sends north with `ferry files send`: listed under
	// Files, its hostile note shown as text, a file downloaded.
	guide := filepath.Join(t.TempDir(), "clinic-guide")
	readme := []byte("boil the water first\n")
	if err := os.MkdirAll(filepath.Join(guide, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(guide, "sub", "readme.txt"), readme, 0o644)
	note := `<img src=x onerror=alert(1)> for the clinic`
	ferry(t, "files", "send", "--data", river.data, "--to", "north", "--note", note, guide)
	carry(t, river, north, "north")
	ada.open(north.url + "/files")
	if st := ada.submit("a[href='/files/received']"); st != 200 {
		t.Fatalf("received files: %d", st)
	}
	if got := ada.text("#received"); !strings.Contains(got, "clinic-guide") || !strings.Contains(got, note) || !strings.Contains(got, "complete") {
		t.Errorf("the received files: %q", got)
	}
	if n := ada.count("#received img"); n != 0 {
		t.Errorf("the sender's note made %d elements", n)
	}
	ada.shot("files-received")
	if st := ada.submit("#received a[href^='/files/received/']"); st != 200 {
		t.Fatalf("the transfer's folder: %d", st)
	}
	if st := ada.submit("#transfer a[href$='/sub/']"); st != 200 {
		t.Fatalf("its sub folder: %d", st)
	}
	ada.shot("files-transfer")
	if got := ada.download("#transfer a[download]"); !bytes.Equal(got, readme) {
		t.Errorf("downloaded %q from the transfer, want %q", got, readme)
	}

	login := newTab(t, b, "login page", true)
	login.open(north.url + "/login")
	login.shot("login")
}

// TestBrowserHostileInput puts script payloads everywhere a member can
// write text (messages, display names, room titles and topics, file
// names) and checks that chromium runs none of them and shows each as
// text; and that a form posted from another origin is refused.
func TestBrowserHostileInput(t *testing.T) {
	b := newBrowser(t)
	north := startServer(t, "north")
	p := newTab(t, b, "eve", true)
	// Any dialog a payload opens is recorded (and closed, so that the
	// page goes on).
	dctx, stopDialogs := context.WithCancel(p.ctx)
	var mu sync.Mutex
	var opened []string
	dialogs := chromedp.Events(dctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			mu.Lock()
			opened = append(opened, ev.Message)
			mu.Unlock()
			chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	makeAdmin(t, p, north, "eve", "")

	payloads := []string{
		`<img src=x onerror="window.__xss=1;alert(1)">`,
		`"><svg onload="window.__xss=2;alert(2)">`,
		`javascript:window.__xss=3;alert(3)`,
	}
	all := strings.Join(payloads, " ")
	p.open(north.url + "/account")
	p.fill("#display", all)
	p.submit("form[action='/account/display'] button")
	p.open(north.url + "/rooms")
	p.click("details summary")
	p.fill("#title", payloads[1], "#name", "hostile", "#topic", payloads[0])
	p.submit("form[action='/rooms'] button")
	for _, body := range payloads {
		p.fill("#body", body)
		p.submit("#compose button[type=submit]")
	}
	p.fill("#body", "[click](javascript:alert(4)) <a href=\"javascript:alert(5)\">x</a>")
	p.submit("#compose button[type=submit]")
	dir := t.TempDir()
	for i, name := range []string{`<img src=x onerror=alert(6)>.txt`, `"><svg onload=alert(7)>.txt`} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, form := range []struct{ page, input, button string }{
			{"/files", "#file", "form[action='/files/upload'] button"},
			{"/rooms/hostile", "#compose input[type=file]", "#compose button[type=submit]"},
		} {
			p.open(north.url + form.page)
			ctx, cancel := p.step()
			err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS(form.input), []string{path}))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if st := p.submit(form.button); st != 200 {
				t.Errorf("uploading %q on %s: %d", name, form.page, st)
			}
		}
	}
	for _, path := range []string{"/rooms", "/rooms/hostile", "/files", "/search?q=onerror", "/search?q=svg", "/messages", "/admin", "/account"} {
		p.open(north.url + path)
		if n := p.count(`img[src="x"], svg, a[href^="javascript"], [onerror], [onload]`); n != 0 {
			t.Errorf("%s: %d elements made from the payloads", path, n)
		}
		ctx, cancel := p.step()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.__xss)`))
		cancel()
		if err != nil || v != "undefined" {
			t.Errorf("%s: a payload ran (window.__xss = %s, %v)", path, v, err)
		}
	}
	p.open(north.url + "/rooms/hostile")
	if got := p.text("#messages"); !strings.Contains(got, payloads[0]) || !strings.Contains(got, payloads[1]) {
		t.Errorf("the payloads are not shown as text: %q", got)
	}
	p.shot("hostile")
	stopDialogs()
	mu.Lock()
	if len(opened) > 0 {
		t.Errorf("payloads opened dialogs: %q", opened)
	}
	mu.Unlock()

	// A page on another origin (same site but another port, whose
	// requests carry the SameSite=Lax cookie; and another site) posts a
	// form to the server, in the logged-in browser: refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form method=post action="%s/rooms"><input name=title value=pwned><input name=csrf value=guess>
			<button id=go>Win a prize</button></form>`, north.url)
	}))
	defer evil.Close()
	for _, origin := range []string{evil.URL, strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)} {
		p.open(origin)
		if st := p.submit("#go"); st != http.StatusForbidden {
			t.Errorf("a form posted from %s: status %d, want 403", origin, st)
		}
	}
	p.open(north.url + "/rooms")
	if strings.Contains(p.text("#rooms"), "pwned") {
		t.Error("a cross-origin form made a room")
	}
}
