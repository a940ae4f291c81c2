package web

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// uploadFiles sends a proposal: fields, then files named as given (a
// folder upload sends each file's path inside the folder).
func (c *client) uploadFiles(path string, fields map[string]string, files map[string][]byte) (*http.Response, string) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", c.csrf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for name, body := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="files"; filename="`+name+`"`)
		h.Set("Content-Type", "application/octet-stream")
		pw, _ := mw.CreatePart(h)
		pw.Write(body)
	}
	mw.Close()
	req := httptest.NewRequest("POST", base.ResolveReference(&url.URL{Path: path}).String(), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

var itemLinkRE = regexp.MustCompile(`href="/archive/items/([0-9a-f]{32})"`)

// TestArchivePages runs the practice through the pages, in process: a
// folder proposed, endorsed, adopted by an admin; browse, search, the
// item page, and the item's files served under the sandbox policy from a
// link that works only for that item and only for members.
func TestArchivePages(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleAdmin)
	f.account("bo", roleMember)
	f.account("cy", roleMember)
	ada, bo, cy := f.member("ada", "10.0.0.1"), f.member("bo", "10.0.0.2"), f.member("cy", "10.0.0.3")
	anon := f.client("10.0.0.9")
	if resp, _ := anon.get("/archive"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("anonymous /archive: %d", resp.StatusCode)
	}
	resp, body := bo.uploadFiles("/archive/proposals", map[string]string{"title": "Wells", "description": "digging and repairs",
		"tags": "water, build", "lang": "en", "source": "https://wells.example/"}, map[string][]byte{
		"wells/index.html":      []byte(`<title>Wells</title><p>Start <a href="pages/pump.html">here</a></p>`),
		"wells/pages/pump.html": []byte(`<h1>Hand pumps</h1><p>replace the leather cup washer</p>`),
	})
	wantStatus(t, "proposing a folder", resp, body, http.StatusSeeOther)
	_, page := cy.get("/archive/proposals")
	if !strings.Contains(page, "Wells") || !strings.Contains(page, "proposed by bo") || !strings.Contains(page, `/archive/proposals/1/endorse`) {
		t.Fatalf("proposals page:\n%s", page)
	}
	// Cy looks at the proposal before endorsing it.
	_, page = cy.get("/archive/proposals/1")
	if !strings.Contains(page, "wells/pages/pump.html") || !strings.Contains(page, `/archive/proposals/1/endorse`) {
		t.Fatalf("proposal page:\n%s", page)
	}
	resp, _ = cy.get("/archive/proposals/1/open?path=wells/pages/pump.html")
	pview := resp.Header.Get("Location")
	if !strings.HasPrefix(pview, "/archive/pview/1/cy.") {
		t.Fatalf("opening the proposal: %d %q", resp.StatusCode, pview)
	}
	if resp, body := anon.get(pview); resp.StatusCode != http.StatusOK || !strings.Contains(body, "cup washer") ||
		!strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "sandbox ") {
		t.Fatalf("the proposal's page: %d %q", resp.StatusCode, body)
	}
	if resp, _ := anon.get(strings.Replace(pview, "/pview/1/", "/pview/2/", 1)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a proposal's link opens another: %d", resp.StatusCode)
	}
	resp, body = bo.post("/archive/proposals/1/endorse", nil)
	wantStatus(t, "endorsing one's own proposal", resp, body, http.StatusForbidden)
	resp, body = ada.post("/archive/proposals/1/adopt", nil)
	wantStatus(t, "adopting without endorsement", resp, body, http.StatusConflict)
	resp, body = cy.post("/archive/proposals/1/endorse", nil)
	wantStatus(t, "endorsing", resp, body, http.StatusSeeOther)
	resp, body = cy.post("/archive/proposals/1/adopt", nil)
	wantStatus(t, "a member adopting", resp, body, http.StatusForbidden)
	resp, body = cy.post("/archive/settings", url.Values{"threshold": {"0"}, "adopt": {"auto"}})
	wantStatus(t, "a member changing the rules", resp, body, http.StatusForbidden)
	resp, body = ada.post("/archive/proposals/1/adopt", nil)
	wantStatus(t, "adopting", resp, body, http.StatusSeeOther)

	_, page = bo.get("/archive")
	m := itemLinkRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "digging and repairs") || !strings.Contains(page, "#water") {
		t.Fatalf("archive page:\n%s", page)
	}
	item := m[1]
	_, page = bo.get("/archive?q=leather+cup")
	if !strings.Contains(page, "pages/pump.html") || !strings.Contains(page, "<mark>leather</mark>") {
		t.Fatalf("search:\n%s", page)
	}
	_, page = bo.get("/archive/history")
	for _, w := range []string{"proposed", "endorsed", "adopted"} {
		if !strings.Contains(page, w) {
			t.Errorf("history lacks %q", w)
		}
	}
	_, page = bo.get("/archive/items/" + item)
	if !strings.Contains(page, "wells.example") || !strings.Contains(page, "wells/pages/pump.html") {
		t.Fatalf("item page:\n%s", page)
	}

	resp, _ = bo.get("/archive/items/" + item + "/open?path=wells/index.html")
	view := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(view, "/archive/view/"+item+"/bo.") || !strings.HasSuffix(view, "/wells/") {
		t.Fatalf("open: %d %q", resp.StatusCode, view)
	}
	resp, body = anon.get(view) // the link itself is the proof: no cookie needed
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Start") {
		t.Fatalf("view: %d %s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "sandbox ") || strings.Contains(csp, "allow-same-origin") || !strings.Contains(csp, "connect-src 'none'") {
		t.Errorf("view CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("view without nosniff")
	}
	tok := strings.Split(view, "/")[4]
	prefix := "/archive/view/" + item + "/" + tok + "/"
	if resp, body := anon.get(prefix + "wells/pages/pump.html"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "cup washer") {
		t.Errorf("a relative link: %d", resp.StatusCode)
	}
	for _, bad := range []string{
		"/archive/view/" + item + "/" + strings.Replace(tok, "bo.", "ada.", 1) + "/wells/index.html", // another user
		"/archive/view/00112233445566778899aabbccddeeff/" + tok + "/wells/index.html",                // another item
		"/archive/view/" + item + "/bo.99999999999.00000000000000000000000000000000/wells/index.html",
	} {
		if resp, _ := anon.get(bad); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s: %d, want 403", bad, resp.StatusCode)
		}
	}
	secret := filepath.Join(f.n.Dir(), "node.db")
	for _, esc := range []string{"../../../../node.db", "..%2f..%2f..%2fnode.db", "%2e%2e/%2e%2e/node.db", "wells/../../../node.db", "/etc/passwd"} {
		resp, body := anon.get(prefix + esc)
		if resp.StatusCode == http.StatusOK && !strings.Contains(body, "Start") {
			t.Errorf("GET %s%s: %d %.100q", prefix, esc, resp.StatusCode, body)
		}
	}
	if _, err := os.Stat(secret); err != nil {
		t.Logf("(no %s to protect: %v)", secret, err)
	}
	// The folder listing of the item is served too, under the same policy.
	if resp, body := anon.get(prefix + "wells/pages/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "pump.html") {
		t.Errorf("folder listing: %d %s", resp.StatusCode, body)
	}
	// A deactivated member's links stop working.
	if _, err := f.s.db.Exec(`UPDATE web_accounts SET active = 0 WHERE user = 'bo'`); err != nil {
		t.Fatal(err)
	}
	if resp, _ := anon.get(view); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a deactivated member's link: %d", resp.StatusCode)
	}
}

// hostileZip returns a zip holding the entries, made with archive/zip.
func hostileZip(t *testing.T, entries ...func(zw *zip.Writer)) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		e(zw)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipFile(name, body string, mode fs.FileMode) func(zw *zip.Writer) {
	return func(zw *zip.Writer) {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, _ := zw.CreateHeader(h)
		w.Write([]byte(body))
	}
}

// TestArchiveHostileUploads: uploads whose names leave the item's root,
// links, bombs: each refused with its reason, nothing staged left
// behind, nothing written outside.
func TestArchiveHostileUploads(t *testing.T) {
	f := newFixture(t, "north")
	f.account("eve", roleMember)
	eve := f.member("eve", "10.0.0.6")
	var tarSym bytes.Buffer
	tw := tar.NewWriter(&tarSym)
	tw.WriteHeader(&tar.Header{Name: "passwd", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	tw.Close()
	var tarUp bytes.Buffer
	tw = tar.NewWriter(&tarUp)
	tw.WriteHeader(&tar.Header{Name: "../../outside.txt", Typeflag: tar.TypeReg, Size: 5, Mode: 0o644})
	tw.Write([]byte("pwned"))
	tw.Close()
	million := func() []byte {
		var b []byte
		le := binary.LittleEndian
		b = le.AppendUint32(b, 0x06064b50)
		b = le.AppendUint64(b, 44)
		b = append(b, 45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		b = le.AppendUint64(b, 2_000_000)
		b = le.AppendUint64(b, 2_000_000)
		b = le.AppendUint64(b, 0)
		b = le.AppendUint64(b, 0)
		b = le.AppendUint32(b, 0x07064b50)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, 0)
		b = le.AppendUint32(b, 1)
		b = le.AppendUint32(b, 0x06054b50)
		b = append(b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0)
		return b
	}()
	bomb := hostileZip(t, func(zw *zip.Writer) {
		h := &zip.FileHeader{Name: "zeros.bin", Method: zip.Store, UncompressedSize64: 1 << 40, CompressedSize64: 4}
		w, _ := zw.CreateRaw(h)
		w.Write([]byte("zero"))
	})
	cases := []struct {
		name   string
		files  map[string][]byte
		reason string
	}{
		{"zip with ../", map[string][]byte{"site.zip": hostileZip(t, zipFile("ok.html", "ok", 0o644), zipFile("../../outside.txt", "pwned", 0o644))}, "leaves the item&#39;s root"},
		{"zip with a symlink", map[string][]byte{"site.zip": hostileZip(t, zipFile("passwd", "/etc/passwd", fs.ModeSymlink|0o777))}, "is a symbolic link"},
		{"zip bomb", map[string][]byte{"site.zip": bomb}, "declared size past the limit"},
		{"zip of millions", map[string][]byte{"site.zip": million}, "declares 2000000 entries"},
		{"tar with a symlink", map[string][]byte{"site.tar": tarSym.Bytes()}, "is a symbolic link"},
		{"tar with ../", map[string][]byte{"site.tar": tarUp.Bytes()}, "leaves the item&#39;s root"},
		{"folder with ../", map[string][]byte{"../../outside.txt": []byte("pwned")}, "leaves the item&#39;s root"},
		{"absolute name", map[string][]byte{"/tmp/outside.txt": []byte("pwned")}, "leaves the item&#39;s root"},
		{"device name", map[string][]byte{"site/NUL.txt": []byte("x")}, "not a name an archive can hold"},
	}
	for _, c := range cases {
		resp, body := eve.uploadFiles("/archive/proposals", map[string]string{"title": c.name, "unpack": "1"}, c.files)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, c.reason) {
			t.Errorf("%s: status %d, want 400 saying %q\n%.2000s", c.name, resp.StatusCode, c.reason, body)
		}
	}
	if ps, _ := f.s.db.Query(`SELECT 1 FROM archive_proposals`); ps.Next() {
		t.Error("a hostile upload made a proposal")
	}
	ents, _ := os.ReadDir(filepath.Join(f.n.Dir(), "archive"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "upload-") {
			t.Errorf("a staging folder stayed: %s", e.Name())
		}
	}
	filepath.WalkDir(filepath.Dir(f.n.Dir()), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "outside.txt" {
			t.Errorf("written outside: %s", p)
		}
		return nil
	})
	// A good zip is unpacked; a single .zip with "unpack" off is kept whole.
	good := hostileZip(t, zipFile("site/index.html", "<p>fine</p>", 0o644))
	for _, unpack := range []string{"1", ""} {
		resp, body := eve.uploadFiles("/archive/proposals", map[string]string{"title": "ok " + unpack, "unpack": unpack}, map[string][]byte{"site.zip": good})
		wantStatus(t, fmt.Sprintf("a good zip, unpack=%q", unpack), resp, body, http.StatusSeeOther)
	}
	var files []int
	rows, _ := f.s.db.Query(`SELECT body FROM archive_proposals ORDER BY id`)
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		files = append(files, bytes.Count(b, []byte("site")))
	}
	rows.Close()
	if len(files) != 2 {
		t.Fatalf("good zips made %d proposals", len(files))
	}
}
