package web

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/node"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a node with its web inbox, served in process.
type fixture struct {
	t     testing.TB
	n     *node.Node
	s     *Server
	clock *clock
}

const testMaxUpload = 1 << 20

func newFixture(t testing.TB, name string) *fixture {
	t.Helper()
	n, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	c := &clock{t: time.Now()}
	s, err := New(n, Options{Now: c.now, MaxUpload: testMaxUpload, Quota: 3 * testMaxUpload, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &fixture{t: t, n: n, s: s, clock: c}
}

// account makes an account whose password is "password-" + user.
func (f *fixture) account(user, role string) {
	f.t.Helper()
	err := f.s.createAccount(context.Background(), user, strings.ToUpper(user[:1])+user[1:], role, "password-"+user,
		func(*sql.Tx) error { return nil })
	if err != nil {
		f.t.Fatal(err)
	}
}

// client is a browser without JavaScript: a cookie jar and a remote
// address, talking to the handler in process.
type client struct {
	t    testing.TB
	h    http.Handler
	jar  *cookiejar.Jar
	addr string
	csrf string
	// header is added to every request.
	header http.Header
}

func (f *fixture) client(addr string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: f.t, h: f.s.Handler(), jar: jar, addr: addr + ":40000", header: http.Header{}}
}

var base, _ = url.Parse("http://ferry.test/")

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	req.RemoteAddr = c.addr
	for k, v := range c.header {
		req.Header[k] = v
	}
	for _, ck := range c.jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	resp := rec.Result()
	c.jar.SetCookies(req.URL, resp.Cookies())
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	req := httptest.NewRequest("GET", base.ResolveReference(&url.URL{Path: path}).String(), nil)
	if u, err := url.Parse(path); err == nil {
		req.URL = base.ResolveReference(u)
		req.RequestURI = u.RequestURI()
	}
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token reads the form token from a page.
func (c *client) token(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no form token on %s:\n%s", path, body)
	}
	return m[1]
}

// post sends a form with the client's form token (unless form has one).
func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", c.csrf)
	}
	req := httptest.NewRequest("POST", base.ResolveReference(&url.URL{Path: path}).String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// upload sends a multipart form: the token first, then fields, then a
// file whose name is sent as is (raw), without Go's escaping.
func (c *client) upload(path string, fields map[string]string, filename string, body io.Reader) (*http.Response, string) {
	c.t.Helper()
	return c.uploadRaw(path, fields, `filename="`+filename+`"`, body)
}

// uploadRaw is upload with the file's disposition parameters as given.
func (c *client) uploadRaw(path string, fields map[string]string, disposition string, body io.Reader) (*http.Response, string) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", c.csrf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; `+disposition)
	h.Set("Content-Type", "application/octet-stream")
	pw, _ := mw.CreatePart(h)
	io.Copy(pw, body)
	mw.Close()
	req := httptest.NewRequest("POST", base.ResolveReference(&url.URL{Path: path}).String(), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

// login logs in and keeps the session's form token.
func (c *client) login(user, password string) *http.Response {
	c.t.Helper()
	tok := c.csrf
	if tok == "" {
		tok = c.token("/login")
	}
	resp, body := c.post("/login", url.Values{"csrf": {tok}, "user": {user}, "password": {password}})
	if resp.StatusCode == http.StatusSeeOther {
		c.csrf = c.token("/account")
	} else {
		c.t.Logf("login %s: %d\n%s", user, resp.StatusCode, body)
	}
	return resp
}

// member logs a new client in as user, from addr.
func (f *fixture) member(user, addr string) *client {
	f.t.Helper()
	c := f.client(addr)
	if resp := c.login(user, "password-"+user); resp.StatusCode != http.StatusSeeOther {
		f.t.Fatalf("login %s: status %d", user, resp.StatusCode)
	}
	return c
}

func wantStatus(t *testing.T, what string, resp *http.Response, body string, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Errorf("%s: status %d, want %d\n%.600s", what, resp.StatusCode, want, body)
	}
}
