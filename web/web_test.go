package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"ferry/node"
)

// TestSetup makes the first admin with the console code, once.
func TestSetup(t *testing.T) {
	f := newFixture(t, "north")
	ctx := t.Context()
	code, err := f.s.SetupCode(ctx)
	if err != nil || normalizeCode(code) != code {
		t.Fatalf("setup code %q, %v", code, err)
	}
	c := f.client("10.0.0.1")
	resp, _ := c.get("/")
	if loc := resp.Header.Get("Location"); loc != "/setup" {
		t.Errorf("/ before setup redirects to %q, want /setup", loc)
	}
	form := url.Values{"csrf": {c.token("/setup")}, "user": {"ada"}, "display": {"Ada"},
		"password": {"correct horse"}, "confirm": {"correct horse"}}
	form.Set("code", "AAAA-AAAA-AAAA-AAAA")
	resp, body := c.post("/setup", form)
	wantStatus(t, "setup with a wrong code", resp, body, http.StatusForbidden)
	form.Set("code", strings.ToLower(strings.ReplaceAll(code, "-", " ")))
	resp, body = c.post("/setup", form)
	wantStatus(t, "setup with the code", resp, body, http.StatusSeeOther)
	if a, err := f.s.account(ctx, "ada"); err != nil || a.Role != roleAdmin {
		t.Fatalf("the first account: %+v %v", a, err)
	}
	if _, err := f.n.Room(ctx, "general"); err != nil {
		t.Errorf("setup made no general room: %v", err)
	}
	// Setup is closed for good, even with a fresh code from a restart.
	if code, err := f.s.SetupCode(ctx); code != "" || err != nil {
		t.Errorf("setup code after setup: %q %v", code, err)
	}
	other := f.client("10.0.0.2")
	resp, body = other.get("/setup")
	wantStatus(t, "GET /setup after setup", resp, body, http.StatusNotFound)
	form.Set("csrf", other.token("/login"))
	form.Set("user", "eve")
	resp, body = other.post("/setup", form)
	wantStatus(t, "POST /setup after setup", resp, body, http.StatusNotFound)
}

// TestSessions checks that login rotates the session, logout ends it, and
// a password change or deactivation ends every session of the account.
func TestSessions(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleAdmin)
	f.account("bob", roleMember)
	bob := f.member("bob", "10.0.0.2")
	first := sessionCookieOf(t, bob)
	if resp := bob.login("bob", "password-bob"); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("second login failed")
	}
	if second := sessionCookieOf(t, bob); second == first {
		t.Error("login kept the session token: it must make a new one")
	}
	stale := f.client("10.0.0.3")
	stale.jar.SetCookies(base, []*http.Cookie{{Name: sessionCookie, Value: first}})
	if resp, _ := stale.get("/rooms"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the session replaced at login still works: %d", resp.StatusCode)
	}
	for _, ck := range []string{"HttpOnly", "SameSite=Lax"} {
		resp := bob.login("bob", "password-bob")
		if !strings.Contains(resp.Header.Get("Set-Cookie"), ck) {
			t.Errorf("session cookie %q lacks %s", resp.Header.Get("Set-Cookie"), ck)
		}
	}

	phone := f.member("bob", "10.0.0.4")
	ada := f.member("ada", "10.0.0.1")
	resp, body := ada.post("/admin/users/bob/deactivate", nil)
	wantStatus(t, "deactivate bob", resp, body, http.StatusSeeOther)
	for _, c := range []*client{bob, phone} {
		if resp, _ := c.get("/rooms"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("a session of a deactivated account still works: %d", resp.StatusCode)
		}
	}
	if resp := f.client("10.0.0.5").login("bob", "password-bob"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a deactivated account logs in: %d", resp.StatusCode)
	}
	resp, body = ada.post("/admin/users/ada/deactivate", nil)
	wantStatus(t, "the last admin deactivates themselves", resp, body, http.StatusConflict)

	// A reset link, used once, ends every session and sets the password.
	resp, body = ada.post("/admin/users/bob/activate", nil)
	wantStatus(t, "reactivate bob", resp, body, http.StatusSeeOther)
	bob = f.member("bob", "10.0.0.2")
	resp, body = ada.post("/admin/users/bob/reset", nil)
	wantStatus(t, "reset link", resp, body, http.StatusOK)
	link := regexp.MustCompile(`/reset/[0-9A-Z-]{19}`).FindString(body)
	if link == "" || !strings.Contains(body, `src="data:image/png;base64,`) {
		t.Fatalf("the reset page shows no link and QR code:\n%s", body)
	}
	anon := f.client("10.0.0.6")
	resp, body = anon.post(link, url.Values{"csrf": {anon.token(link)}, "password": {"new password"}, "confirm": {"new password"}})
	wantStatus(t, "use the reset link", resp, body, http.StatusSeeOther)
	if resp, _ := bob.get("/rooms"); resp.StatusCode != http.StatusSeeOther {
		t.Error("bob's old session survived the reset")
	}
	if resp := f.client("10.0.0.7").login("bob", "new password"); resp.StatusCode != http.StatusSeeOther {
		t.Error("the new password does not work")
	}
	anon = f.client("10.0.0.8")
	resp, body = anon.post(link, url.Values{"csrf": {anon.token("/login")}, "password": {"again again"}, "confirm": {"again again"}})
	wantStatus(t, "a reset link used twice", resp, body, http.StatusNotFound)

	// After login, only paths of this site are followed.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		c := f.client("10.0.3.1")
		resp, _ := c.post("/login", url.Values{"csrf": {c.token("/login")}, "user": {"ada"}, "password": {"password-ada"}, "next": {next}})
		if loc := resp.Header.Get("Location"); loc != "/rooms" {
			t.Errorf("login with next=%q redirects to %q", next, loc)
		}
	}

	// Logout ends this session only.
	c1, c2 := f.member("ada", "10.0.1.1"), f.member("ada", "10.0.1.2")
	resp, body = c1.post("/logout", nil)
	wantStatus(t, "logout", resp, body, http.StatusSeeOther)
	if resp, _ := c1.get("/rooms"); resp.StatusCode != http.StatusSeeOther {
		t.Error("the session survived logout")
	}
	if resp, _ := c2.get("/rooms"); resp.StatusCode != http.StatusOK {
		t.Error("logout ended another device's session")
	}
}

func sessionCookieOf(t *testing.T, c *client) string {
	t.Helper()
	for _, ck := range c.jar.Cookies(base) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestInvites checks that an invite makes an account once, and not after
// it expires.
func TestInvites(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleAdmin)
	ada := f.member("ada", "10.0.0.1")
	invite := func() string {
		resp, body := ada.post("/admin/invites", url.Values{"role": {"member"}, "days": {"1"}})
		wantStatus(t, "make an invite", resp, body, http.StatusOK)
		link := regexp.MustCompile(`/invite/[0-9A-Z-]{19}`).FindString(body)
		if link == "" || !strings.Contains(body, `src="data:image/png;base64,`) {
			t.Fatalf("the invite page shows no link and QR code:\n%s", body)
		}
		return link
	}
	join := func(link, user string) (*http.Response, string) {
		c := f.client("10.0.2.1")
		tok := c.token("/login")
		return c.post(link, url.Values{"csrf": {tok}, "user": {user}, "display": {user}, "password": {"password-" + user}, "confirm": {"password-" + user}})
	}
	link := invite()
	resp, body := join(link, "ada")
	wantStatus(t, "join under a taken name", resp, body, http.StatusBadRequest)
	resp, body = join(link, "cleo")
	wantStatus(t, "join", resp, body, http.StatusSeeOther)
	resp, body = join(link, "dan")
	wantStatus(t, "join with a used invite", resp, body, http.StatusNotFound)
	if a, err := f.s.account(t.Context(), "cleo"); err != nil || a.Role != roleMember {
		t.Errorf("cleo's account: %+v %v", a, err)
	}
	old := invite()
	f.clock.advance(25 * time.Hour)
	resp, body = join(old, "dan")
	wantStatus(t, "join with an expired invite", resp, body, http.StatusNotFound)
}

// TestCSRF checks the two defences: cross-origin requests are refused by
// their headers, and requests without headers (old phones) need the
// form token.
func TestCSRF(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	room := func(name string, hdr map[string]string, token string) int {
		t.Helper()
		c.header = http.Header{}
		for k, v := range hdr {
			c.header.Set(k, v)
		}
		defer func() { c.header = http.Header{} }()
		resp, _ := c.post("/rooms", url.Values{"csrf": {token}, "title": {name}})
		return resp.StatusCode
	}
	cases := []struct {
		name  string
		hdr   map[string]string
		token string
		want  int
	}{
		{"same-origin with token", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://ferry.test"}, c.csrf, http.StatusSeeOther},
		{"no headers with token (old phone)", nil, c.csrf, http.StatusSeeOther},
		{"cross-site with token", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, c.csrf, http.StatusForbidden},
		{"foreign Origin only, with token", map[string]string{"Origin": "http://evil.example"}, c.csrf, http.StatusForbidden},
		{"no headers, no token", nil, "", http.StatusForbidden},
		{"no headers, wrong token", nil, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusForbidden},
		{"same-origin without token", map[string]string{"Sec-Fetch-Site": "same-origin"}, "", http.StatusForbidden},
	}
	for i, tc := range cases {
		if got := room(fmt.Sprintf("room %d", i), tc.hdr, tc.token); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	// The login form has a token too.
	anon := f.client("10.0.0.2")
	resp, body := anon.post("/login", url.Values{"csrf": {""}, "user": {"ada"}, "password": {"password-ada"}})
	wantStatus(t, "login without token", resp, body, http.StatusForbidden)
	// Uploads: the token is the first part; a form that takes no file
	// refuses multipart.
	csrf := c.csrf
	c.csrf = ""
	resp, body = c.upload("/files/upload", nil, "a.txt", strings.NewReader("x"))
	wantStatus(t, "upload without token", resp, body, http.StatusForbidden)
	c.csrf = csrf
	resp, body = c.upload("/rooms", map[string]string{"title": "x"}, "a.txt", strings.NewReader("x"))
	wantStatus(t, "multipart to a form without files", resp, body, http.StatusUnsupportedMediaType)
}

// TestSecurityHeaders checks the headers of a page, an error and a file.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	resp, body := c.upload("/files/upload", map[string]string{"space": "own"}, "page.html", strings.NewReader("<script>alert(1)</script>"))
	wantStatus(t, "upload", resp, body, http.StatusSeeOther)
	_, files, _ := f.n.ListFolder(t.Context(), "ada", 0)
	for _, path := range []string{"/rooms", "/nowhere", "/login", fmt.Sprintf("/files/%d", files[0].ID)} {
		resp, _ := c.get(path)
		h := resp.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") && !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers missing: %v", path, h)
		}
	}
	resp, _ = c.get(fmt.Sprintf("/files/%d", files[0].ID))
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") ||
		resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("an uploaded HTML file is served as %q, %q, CSP %q", resp.Header.Get("Content-Type"), cd, resp.Header.Get("Content-Security-Policy"))
	}
}

// TestEveryRouteIsGuarded walks the router: every route but the public
// ones sends an anonymous visitor to the login page or refuses it, and
// every admin route refuses a member.
func TestEveryRouteIsGuarded(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleAdmin)
	f.account("bob", roleMember)
	anon, bob := f.client("10.0.0.9"), f.member("bob", "10.0.0.2")
	anon.csrf = anon.token("/login")
	public := regexp.MustCompile(`^/(|login|setup|healthz|invite/.*|reset/.*|static/.*)$`)
	sample := strings.NewReplacer("{room}", "general", "{with}", "ada@north", "{user}", "ada",
		"{code}", "AAAA-AAAA-AAAA-AAAA", "{id:[0-9]+}", "1", "{action:rename|delete|share}", "rename",
		"{action:rename|delete}", "rename", "{action:display|password|logout-all}", "display",
		"{action:activate|deactivate|admin|member|reset}", "deactivate",
		"{item:[0-9a-f]{32}}", "00112233445566778899aabbccddeeff", "{id:[0-9a-f]{32}}", "00112233445566778899aabbccddeeff", "{token:[^/]+}", "ada.9999999999.00",
		"{action:endorse|adopt|withdraw}", "endorse", "{id}", "north")
	n := 0
	err := f.s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err1 := route.GetPathTemplate()
		methods, err2 := route.GetMethods()
		if err1 != nil || err2 != nil {
			return nil
		}
		path := sample.Replace(tpl)
		if strings.Contains(path, "{") {
			t.Errorf("no sample for route %s", tpl)
			return nil
		}
		if tpl == "/static/" {
			path = "/static/style.css"
		}
		for _, m := range methods {
			if m == "HEAD" {
				continue
			}
			n++
			var resp *http.Response
			if m == "GET" {
				resp, _ = anon.get(path)
			} else {
				resp, _ = anon.post(path, nil)
			}
			isPublic := public.MatchString(path)
			guarded := resp.StatusCode == http.StatusForbidden ||
				resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/login")
			if !isPublic && !guarded {
				t.Errorf("anonymous %s %s: status %d, want a redirect to /login or 403", m, path, resp.StatusCode)
			}
			if strings.HasPrefix(path, "/admin") {
				var resp *http.Response
				if m == "GET" {
					resp, _ = bob.get(path)
				} else {
					resp, _ = bob.post(path, nil)
				}
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("member %s %s: status %d, want 403", m, path, resp.StatusCode)
				}
			}
		}
		return nil
	})
	if err != nil || n < 40 {
		t.Errorf("walked %d routes (%v)", n, err)
	}
}

// TestPrivacy checks that a member cannot reach another member's direct
// messages, attachments, files or folders by guessing numbers.
func TestPrivacy(t *testing.T) {
	f := newFixture(t, "north")
	ctx := t.Context()
	for _, u := range []string{"anna", "bob", "carol"} {
		f.account(u, roleMember)
	}
	if _, err := f.n.CreateRoom(ctx, "general", "General", "", "anna"); err != nil {
		t.Fatal(err)
	}
	anna, carol := f.member("anna", "10.0.0.1"), f.member("carol", "10.0.0.3")
	resp, body := anna.upload("/messages/bob@north", map[string]string{"body": "the secret is marigold"}, "secret.txt", strings.NewReader("marigold"))
	wantStatus(t, "anna sends bob a file", resp, body, http.StatusSeeOther)
	resp, body = anna.upload("/files/upload", map[string]string{"space": "own"}, "diary.txt", strings.NewReader("dear diary"))
	wantStatus(t, "anna uploads", resp, body, http.StatusSeeOther)
	resp, body = anna.post("/files/folder", url.Values{"space": {"own"}, "name": {"private"}})
	wantStatus(t, "anna makes a folder", resp, body, http.StatusSeeOther)
	folder := strings.TrimPrefix(resp.Header.Get("Location"), "/files/folder/")

	es, err := f.n.DirectMessages(ctx, "anna", node.Address{User: "bob", Node: "north"}, node.Page{})
	if err != nil || len(es) != 1 || len(es[0].Files) != 1 {
		t.Fatalf("anna's message: %+v %v", es, err)
	}
	_, files, _ := f.n.ListFolder(ctx, "anna", 0)
	guesses := []string{
		fmt.Sprintf("/attachments/%d", es[0].Files[0].ID),
		fmt.Sprintf("/files/%d", files[0].ID),
		"/files/folder/" + folder,
		fmt.Sprintf("/rooms/general?reply=%d", es[0].ID),
	}
	for _, g := range guesses {
		resp, body := carol.get(g)
		if strings.Contains(body, "secret is marigold") || strings.Contains(body, "dear diary") || resp.StatusCode == http.StatusOK && !strings.Contains(g, "reply") {
			t.Errorf("carol GET %s: status %d, shows anna's data", g, resp.StatusCode)
		}
	}
	for _, p := range []string{fmt.Sprintf("/files/%d/delete", files[0].ID), fmt.Sprintf("/files/%d/rename", files[0].ID), "/files/folder/" + folder + "/delete"} {
		resp, body := carol.post(p, url.Values{"name": {"mine"}})
		wantStatus(t, "carol POST "+p, resp, body, http.StatusNotFound)
	}
	resp, body = carol.upload("/files/upload", map[string]string{"space": "own", "folder": folder}, "x.txt", strings.NewReader("x"))
	wantStatus(t, "carol uploads into anna's folder", resp, body, http.StatusNotFound)
	resp, body = carol.post("/rooms/general", url.Values{"body": {"hi"}, "reply_to": {fmt.Sprint(es[0].ID)}})
	wantStatus(t, "carol replies in a room to anna's direct message", resp, body, http.StatusBadRequest)
	for _, path := range []string{"/messages/anna@north", "/messages/bob@north", "/search?q=marigold", "/messages"} {
		if _, body := carol.get(path); strings.Contains(body, "secret is") || strings.Contains(body, "<mark>") {
			t.Errorf("carol sees anna's message on %s", path)
		}
	}
	if _, body := anna.get("/search?q=marigold"); !strings.Contains(body, "<mark>marigold</mark>") {
		t.Errorf("anna's search does not find her own message:\n%s", body)
	}

	// Another community's rooms are not here to guess (its posts into a
	// room not shared with it are refused by the node: node's
	// TestSharedRoom).
	resp, body = carol.get("/rooms/riverroom")
	wantStatus(t, "a room that does not exist here", resp, body, http.StatusNotFound)
}

// TestHostileUploads stores hostile file names safely and refuses what is
// too large.
func TestHostileUploads(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	long := strings.Repeat("ж", 300)
	names := []string{"../../x", "..\\..\\y", long + ".txt", `<img src=x onerror=alert(1)>.png`, ".."}
	for _, name := range names {
		resp, body := c.upload("/files/upload", map[string]string{"space": "own"}, name, strings.NewReader("content of "+name))
		wantStatus(t, fmt.Sprintf("upload %q", name), resp, body, http.StatusSeeOther)
	}
	// A NUL: percent-encoded (RFC 2231) it reaches the store, which drops
	// it; raw, the multipart header is malformed and nothing is stored.
	resp, body := c.uploadRaw("/files/upload", map[string]string{"space": "own"}, `filename*=UTF-8''a%00b.txt`, strings.NewReader("content of NUL"))
	wantStatus(t, "upload a%00b.txt", resp, body, http.StatusSeeOther)
	names = append(names, "ab.txt")
	resp, body = c.upload("/files/upload", map[string]string{"space": "own"}, "c\x00d.txt", strings.NewReader("raw NUL"))
	wantStatus(t, "upload with a raw NUL", resp, body, http.StatusBadRequest)
	_, files, err := f.n.ListFolder(t.Context(), "ada", 0)
	if err != nil || len(files) != len(names) {
		t.Fatalf("stored %d files, want %d (%v)", len(files), len(names), err)
	}
	for _, fl := range files {
		if strings.ContainsAny(fl.Name, "/\\\x00") || !utf8.ValidString(fl.Name) || len(fl.Name) > node.MaxFileName || fl.Name == ".." {
			t.Errorf("unsafe stored name %q", fl.Name)
		}
		resp, body := c.get(fmt.Sprintf("/files/%d", fl.ID))
		cd := resp.Header.Get("Content-Disposition")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(cd, "attachment") || strings.ContainsAny(cd, "\x00\r\n") || !strings.HasPrefix(body, "content of ") {
			t.Errorf("download of %q: %d, %q", fl.Name, resp.StatusCode, cd)
		}
	}
	if _, err := os.Stat(filepath.Join(f.n.Dir(), "..", "x")); err == nil {
		t.Error("an upload wrote outside the data directory")
	}
	// Over the limit: 413, announced by Content-Length or found while
	// streaming, and nothing kept.
	resp, body = c.upload("/files/upload", map[string]string{"space": "own"}, "big.bin", io.LimitReader(zeros{}, testMaxUpload+1))
	wantStatus(t, "an upload one byte over the limit", resp, body, http.StatusRequestEntityTooLarge)
	resp, body = c.upload("/files/upload", map[string]string{"space": "own"}, "huge.bin", io.LimitReader(zeros{}, 3*testMaxUpload))
	wantStatus(t, "an upload far over the limit", resp, body, http.StatusRequestEntityTooLarge)
	if tmp, _ := filepath.Glob(filepath.Join(f.n.Dir(), "files", "tmp", "*")); len(tmp) != 0 {
		t.Errorf("refused uploads left %v", tmp)
	}
	// Over the quota (3 MiB): 413.
	for i := range 3 {
		resp, body := c.upload("/files/upload", map[string]string{"space": "own"}, fmt.Sprintf("part%d", i), io.LimitReader(randomish(i), testMaxUpload))
		if i < 2 {
			wantStatus(t, "an upload within the quota", resp, body, http.StatusSeeOther)
		} else {
			wantStatus(t, "an upload over the quota", resp, body, http.StatusRequestEntityTooLarge)
		}
	}
	// A form body over its bound.
	resp, body = c.post("/rooms", url.Values{"title": {strings.Repeat("x", maxFormBody)}})
	wantStatus(t, "a form over 64 KiB", resp, body, http.StatusRequestEntityTooLarge)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// randomish is a different byte stream per seed, so bodies do not dedup.
type randomish byte

func (r randomish) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i) ^ byte(r)
	}
	return len(p), nil
}

// TestLoginRateLimit: twenty wrong passwords slow down that client, while
// the right password from another client still works at once.
func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	attacker, ada := f.client("192.0.2.66"), f.client("10.0.0.1")
	var codes []int
	for i := range 20 {
		resp := attacker.login("ada", fmt.Sprintf("guess %d", i))
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != http.StatusUnauthorized || codes[19] != http.StatusTooManyRequests {
		t.Errorf("statuses of 20 wrong passwords: %v, want 401 first and 429 at the end", codes)
	}
	if resp := attacker.login("ada", "password-ada"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the attacking client, right password: %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := ada.login("ada", "password-ada"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("ada from her own device: %d, want a login", resp.StatusCode)
	}
	f.clock.advance(maxDelay + time.Second)
	if resp := attacker.login("ada", "password-ada"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the delay: %d, want a login", resp.StatusCode)
	}
}

// TestEscaping checks the HTML of pages showing hostile text; the browser
// test checks that no script runs.
func TestEscaping(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleAdmin)
	c := f.member("ada", "10.0.0.1")
	xss := `<img src=x onerror=alert(1)>"><svg onload=alert(2)> javascript:alert(3)`
	c.post("/account/display", url.Values{"display": {xss}})
	resp, body := c.post("/rooms", url.Values{"title": {xss}, "name": {"xss"}, "topic": {xss}})
	wantStatus(t, "create a room", resp, body, http.StatusSeeOther)
	c.post("/rooms/xss", url.Values{"body": {xss + " http://ok.example/a?b=<c>"}})
	for _, path := range []string{"/rooms", "/rooms/xss", "/search?q=onerror", "/account", "/admin"} {
		_, body := c.get(path)
		for _, bad := range []string{"<img src=x", "<svg onload", `href="javascript:`} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q unescaped", path, bad)
			}
		}
	}
	_, body = c.get("/rooms/xss")
	if !strings.Contains(body, `&lt;img src=x onerror=alert(1)&gt;`) || !strings.Contains(body, `<a href="http://ok.example/a?b=" rel="noopener noreferrer nofollow" target="_blank">`) {
		t.Errorf("the room page does not show the text escaped and the http link linked:\n%s", body)
	}
}

// TestLiveEvents checks that a page's event stream hears of a post made
// here and of a change made by another process (ferry import).
func TestLiveEvents(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	srv := httptest.NewServer(f.s.Handler())
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/events", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sessionCookieOf(t, c)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event:") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	expect := func(what string) {
		t.Helper()
		select {
		case l := <-lines:
			if l != "event: change" {
				t.Errorf("%s: got %q", what, l)
			}
		case <-time.After(30 * time.Second): // only bounds a hang
			t.Fatalf("%s: no event", what)
		}
		for len(lines) > 0 {
			<-lines
		}
	}
	c.post("/rooms", url.Values{"title": {"Garden"}})
	expect("after a post through the server")
	time.Sleep(200 * time.Millisecond)
	for len(lines) > 0 {
		<-lines
	}
	other, err := node.Open(f.n.Dir(), node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, _, err := other.Post(context.Background(), node.Draft{From: "ada", Room: "garden", Body: "from another process"}); err != nil {
		t.Fatal(err)
	}
	expect("after a write by another connection")
}

// TestServerLifecycle checks that Open reports listen errors at once and
// Close ends open event streams.
func TestServerLifecycle(t *testing.T) {
	f := newFixture(t, "north")
	if err := f.s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	g := newFixture(t, "river")
	if err := g.s.Open(f.s.Addr().String()); err == nil {
		t.Error("Open on a taken address succeeded")
	}
	f.account("ada", roleMember)
	c := f.member("ada", "10.0.0.1")
	req, _ := http.NewRequest("GET", "http://"+f.s.Addr().String()+"/events", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sessionCookieOf(t, c)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
	start := time.Now()
	if err := f.s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute): // only bounds a hang
		t.Error("an event stream outlived Close")
	}
	// Close ending the stream itself, not by the shutdown timeout, shows
	// as no error above: the timeout would be a context.DeadlineExceeded.
	t.Logf("Close with an open event stream took %v", time.Since(start))
	if _, err := http.Get("http://" + f.s.Addr().String() + "/login"); err == nil || !errors.Is(err, err) {
		t.Error("the server still answers after Close")
	}
}

// TestPageWeight: a room page of 50 messages, with its CSS, script and
// icon, stays under 100 KB, and nothing on it comes from another site.
func TestPageWeight(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	if _, err := f.n.CreateRoom(t.Context(), "general", "General", "", "ada"); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		body := fmt.Sprintf("message %d: %s", i, strings.Repeat("the market moves to the school yard on friday ", 3))
		if _, _, err := f.n.Post(t.Context(), node.Draft{From: "ada", Room: "general", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	c := f.member("ada", "10.0.0.1")
	_, page := c.get("/rooms/general")
	total := len(page)
	for _, a := range regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		resp, body := c.get(a[1])
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", a[1], resp.StatusCode)
		}
		body = strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, "") // a name, not a request
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "@import") {
			t.Errorf("%s refers to another site", a[1])
		}
		total += int(resp.ContentLength)
	}
	if total > 100<<10 {
		t.Errorf("the room page weighs %d bytes with its assets, want under 100 KB", total)
	}
	if m := regexp.MustCompile(`(?:href|src|action)="(?:https?:)?//`).FindString(page); m != "" {
		t.Errorf("the page refers to another site: %s", m)
	}
	t.Logf("room page with 50 messages: %d bytes with its assets", total)
}

// TestFilesAndReplies goes through the file pages (folders, upload,
// rename, share into a room, delete, the shared space's rules) and a
// reply in a room.
func TestFilesAndReplies(t *testing.T) {
	f := newFixture(t, "north")
	ctx := t.Context()
	f.account("ada", roleAdmin)
	f.account("bob", roleMember)
	f.account("cleo", roleMember)
	if _, err := f.n.CreateRoom(ctx, "general", "General", "", "ada"); err != nil {
		t.Fatal(err)
	}
	bob, cleo, ada := f.member("bob", "10.0.0.2"), f.member("cleo", "10.0.0.3"), f.member("ada", "10.0.0.1")

	resp, body := bob.post("/files/folder", url.Values{"space": {"own"}, "name": {"Minutes"}})
	wantStatus(t, "make a folder", resp, body, http.StatusSeeOther)
	folder := strings.TrimPrefix(resp.Header.Get("Location"), "/files/folder/")
	resp, body = bob.upload("/files/upload", map[string]string{"space": "own", "folder": folder}, "june.txt", strings.NewReader("june minutes"))
	wantStatus(t, "upload into the folder", resp, body, http.StatusSeeOther)
	_, files, _ := f.n.ListFolder(ctx, "bob", mustAtoi(t, folder))
	if len(files) != 1 {
		t.Fatalf("the folder holds %+v", files)
	}
	id := fmt.Sprint(files[0].ID)
	resp, body = bob.post("/files/"+id+"/rename", url.Values{"name": {"juin.txt"}})
	wantStatus(t, "rename", resp, body, http.StatusSeeOther)
	if _, body := bob.get("/files/folder/" + folder); !strings.Contains(body, "juin.txt") || !strings.Contains(body, "Minutes") {
		t.Errorf("the folder page after the rename:\n%s", body)
	}
	resp, body = bob.post("/files/"+id+"/share", url.Values{"room": {"general"}, "note": {"the minutes"}})
	wantStatus(t, "share into a room", resp, body, http.StatusSeeOther)
	_, body = cleo.get("/rooms/general")
	att := regexp.MustCompile(`href="(/attachments/\d+)"`).FindStringSubmatch(body)
	if att == nil || !strings.Contains(body, "juin.txt") || !strings.Contains(body, "the minutes") {
		t.Fatalf("the room does not show the shared file:\n%s", body)
	}
	if resp, body := cleo.get(att[1]); resp.StatusCode != http.StatusOK || body != "june minutes" {
		t.Errorf("cleo downloads the shared file: %d %q", resp.StatusCode, body)
	}
	resp, body = bob.post("/files/"+id+"/delete", nil)
	wantStatus(t, "delete", resp, body, http.StatusSeeOther)
	if resp, body := cleo.get(att[1]); resp.StatusCode != http.StatusOK || body != "june minutes" {
		t.Errorf("the room's copy after the file was deleted: %d %q", resp.StatusCode, body)
	}

	// The shared space: everyone reads; the uploader or an admin changes.
	resp, body = bob.upload("/files/upload", map[string]string{"space": "shared"}, "map.txt", strings.NewReader("a map"))
	wantStatus(t, "upload to the shared space", resp, body, http.StatusSeeOther)
	_, shared, _ := f.n.ListFolder(ctx, "", 0)
	sid := fmt.Sprint(shared[0].ID)
	if resp, body := cleo.get("/files/" + sid); resp.StatusCode != http.StatusOK || body != "a map" {
		t.Errorf("cleo reads a shared file: %d", resp.StatusCode)
	}
	resp, body = cleo.post("/files/"+sid+"/delete", nil)
	wantStatus(t, "cleo deletes bob's shared file", resp, body, http.StatusForbidden)
	resp, body = ada.post("/files/"+sid+"/rename", url.Values{"name": {"old map.txt"}})
	wantStatus(t, "an admin renames it", resp, body, http.StatusSeeOther)

	// A reply quotes what it answers.
	es, _ := f.n.RoomMessages(ctx, "general", node.Page{})
	resp, body = cleo.get(fmt.Sprintf("/rooms/general?reply=%d", es[0].ID))
	if !strings.Contains(body, `name="reply_to" value="`+fmt.Sprint(es[0].ID)+`"`) {
		t.Fatalf("the reply form does not carry the message answered:\n%s", body)
	}
	resp, body = cleo.post("/rooms/general", url.Values{"body": {"thanks bob"}, "reply_to": {fmt.Sprint(es[0].ID)}})
	wantStatus(t, "reply", resp, body, http.StatusSeeOther)
	if _, body := ada.get("/rooms/general"); !strings.Contains(body, `class="quote" href="#m`+fmt.Sprint(es[0].ID)+`"`) {
		t.Errorf("the reply shows no quote:\n%s", body)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
