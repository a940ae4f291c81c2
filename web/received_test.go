package web

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/node"
	"ferry/transfer"
)

// peerOf makes a community and introduces it and the fixture's node to
// each other.
func peerOf(t *testing.T, f *fixture, name string) *node.Node {
	t.Helper()
	o, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	for _, p := range [][2]*node.Node{{f.n, o}, {o, f.n}} {
		card, err := p[1].Card(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p[0].AddPeer(t.Context(), card, ""); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// carryBundles seals what from has for to, writes it to a folder as a
// stick would hold it, and ingests every bundle at to.
func carryBundles(t *testing.T, from, to *node.Node) {
	t.Helper()
	carrySome(t, from, to, -1)
}

// carrySome is carryBundles for the first max bundles only (all if
// max < 0).
func carrySome(t *testing.T, from, to *node.Node, max int) {
	t.Helper()
	ctx := t.Context()
	if _, err := from.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := from.Export(ctx, to.ID(), dir); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
	if len(names) == 0 {
		t.Fatalf("nothing to carry from %s to %s", from.Name(), to.Name())
	}
	if max >= 0 && max < len(names) {
		names = names[:max]
	}
	for _, name := range names {
		b, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = to.Ingest(ctx, b)
		b.Close()
		if err != nil {
			t.Fatalf("ingest %s at %s: %v", filepath.Base(name), to.Name(), err)
		}
	}
}

func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// getRaw sends a GET whose request line is target as written: no
// client-side cleaning of dot segments or escapes.
func (c *client) getRaw(target string) (*http.Response, string) {
	c.t.Helper()
	return c.do(httptest.NewRequest("GET", "http://ferry.test"+target, nil))
}

const hostileNote = `<script>alert("note")</script> for the <b>clinic</b>`

// TestReceivedTransfers: river sends north a folder by a carried folder
// of bundles; north's members see it listed with its (escaped) note,
// browse its folders and download its files byte for byte; anonymous
// visitors are sent to log in; north's own transfer to river shows its
// parts delivered once river's receipts come back.
func TestReceivedTransfers(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	river := peerOf(t, f, "river")
	ctx := t.Context()

	big := make([]byte, 300<<10)
	rand.Read(big)
	src := filepath.Join(t.TempDir(), "guide")
	writeTree(t, src, map[string][]byte{
		"readme.txt":       []byte("read me first\n"),
		"page.html":        []byte("<script>alert(document.cookie)</script>"),
		"sub/data.bin":     big,
		"école/ça va.txt":  []byte("ça va\n"),
		"sub/deeper/x.txt": []byte("x\n"),
	})
	rep, err := transfer.Send(ctx, river, f.n.ID(), []string{src}, transfer.SendOptions{Note: hostileNote})
	if err != nil {
		t.Fatal(err)
	}
	carryBundles(t, river, f.n)
	id := rep.IDHex

	anon := f.client("10.0.0.9")
	for _, p := range []string{"/files/received", "/files/received/" + id + "/", "/files/received/" + id + "/readme.txt"} {
		resp, body := anon.get(p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") || strings.Contains(body, "read me") {
			t.Errorf("anonymous GET %s: %d %q, want a redirect to /login", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	ada := f.member("ada", "10.0.0.1")
	_, body := ada.get("/files")
	if !strings.Contains(body, `href="/files/received"`) {
		t.Errorf("the files page has no link to the received files")
	}
	resp, body := ada.get("/files/received")
	wantStatus(t, "received list", resp, body, http.StatusOK)
	for _, want := range []string{"river", `href="/files/received/` + id + `/"`, "guide", "5 files", "complete",
		"&lt;script&gt;alert(&#34;note&#34;)&lt;/script&gt; for the &lt;b&gt;clinic&lt;/b&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("received list lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<b>clinic") {
		t.Errorf("the sender's note is not escaped:\n%s", body)
	}
	if strings.Contains(body, filepath.Dir(transfer.Received(f.n))) {
		t.Errorf("a member who is not an admin sees the server's folders")
	}

	resp, body = ada.get("/files/received/" + id + "/")
	wantStatus(t, "transfer folder", resp, body, http.StatusOK)
	for _, want := range []string{`href="/files/received/` + id + `/sub/"`, `href="/files/received/` + id + `/%C3%A9cole/"`,
		`href="/files/received/` + id + `/readme.txt" download`, "14 B", "&lt;script&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("transfer folder lacks %q\n%s", want, body)
		}
	}
	resp, body = ada.get("/files/received/" + id + "/sub/")
	wantStatus(t, "sub folder", resp, body, http.StatusOK)
	if !strings.Contains(body, `href="/files/received/`+id+`/sub/data.bin" download`) || !strings.Contains(body, "300.0 KB") ||
		!strings.Contains(body, `href="/files/received/`+id+`/sub/deeper/"`) {
		t.Errorf("sub folder lacks its file or folder:\n%s", body)
	}
	if resp, _ := ada.get("/files/received/" + id + "/sub"); resp.StatusCode != http.StatusMovedPermanently ||
		resp.Header.Get("Location") != "/files/received/"+id+"/sub/" {
		t.Errorf("a folder without its slash: %d %q, want a redirect to the folder", resp.StatusCode, resp.Header.Get("Location"))
	}

	resp, got := ada.get("/files/received/" + id + "/sub/data.bin")
	wantStatus(t, "download", resp, "", http.StatusOK)
	if !bytes.Equal([]byte(got), big) {
		t.Errorf("downloaded %d bytes, not the %d sent", len(got), len(big))
	}
	resp, got = ada.get("/files/received/" + id + "/%C3%A9cole/%C3%A7a%20va.txt")
	if resp.StatusCode != http.StatusOK || got != "ça va\n" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename*=utf-8''%C3%A7a%20va.txt` {
		t.Errorf("non-ASCII download: %d %q %q", resp.StatusCode, got, resp.Header.Get("Content-Disposition"))
	}
	resp, _ = ada.get("/files/received/" + id + "/page.html")
	h := resp.Header
	if resp.StatusCode != http.StatusOK || h.Get("Content-Disposition") != `attachment; filename=page.html` ||
		h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Content-Security-Policy") != "default-src 'none'; sandbox" {
		t.Errorf("a received HTML file is served as %d %v", resp.StatusCode, h)
	}
	if resp, _ := ada.get("/files/received/" + id + "/readme.txt/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a file asked for as a folder: %d, want 404", resp.StatusCode)
	}
	if resp, _ := ada.get("/files/received/00112233445566778899aabbccddeeff/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown transfer: %d, want 404", resp.StatusCode)
	}

	// North sends river a folder: queued, then delivered once river's
	// receipt comes back.
	if _, err := transfer.Send(ctx, f.n, river.ID(), []string{filepath.Join(src, "sub")}, transfer.SendOptions{Name: "reply"}); err != nil {
		t.Fatal(err)
	}
	if _, body := ada.get("/files/received"); !strings.Contains(body, "reply") || !strings.Contains(body, "0/1 parts delivered") {
		t.Errorf("the sent list lacks the queued transfer:\n%s", body)
	}
	carryBundles(t, f.n, river)
	carryBundles(t, river, f.n)
	if _, body := ada.get("/files/received"); !strings.Contains(body, "1/1 parts delivered") {
		t.Errorf("the sent list does not show the delivery:\n%s", body)
	}

	// An admin sees where it is on the server; once someone moves it
	// away, its pages say so.
	f.account("root", roleAdmin)
	folder := filepath.Join(transfer.Received(f.n), "river", "guide")
	if _, body := f.member("root", "10.0.0.3").get("/files/received"); !strings.Contains(body, folder) {
		t.Errorf("an admin does not see the folder %s", folder)
	}
	if err := os.Rename(folder, folder+".moved"); err != nil {
		t.Fatal(err)
	}
	resp, body = ada.get("/files/received/" + id + "/readme.txt")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no longer on the server") {
		t.Errorf("a moved transfer: %d\n%s", resp.StatusCode, body)
	}
}

// TestReceivedTransferInParts: a transfer of which one part of three
// arrived shows what arrived of it, and its folder holds that part's
// file only.
func TestReceivedTransferInParts(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	river := peerOf(t, f, "river")
	src := filepath.Join(t.TempDir(), "maps")
	files := map[string][]byte{}
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		b := make([]byte, 100<<10)
		rand.Read(b)
		files[name] = b
	}
	writeTree(t, src, files)
	rep, err := transfer.Send(t.Context(), river, f.n.ID(), []string{src}, transfer.SendOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Parts != 3 {
		t.Fatalf("sent in %d parts, want 3", rep.Parts)
	}
	carrySome(t, river, f.n, 1)
	ada := f.member("ada", "10.0.0.1")
	_, body := ada.get("/files/received")
	if !strings.Contains(body, "1 of 3 files, 100.0 KB of 300.0 KB, 1/3 parts") || strings.Contains(body, "complete") {
		t.Errorf("a transfer one part of three in:\n%s", body)
	}
	_, body = ada.get("/files/received/" + rep.IDHex + "/")
	if n := strings.Count(body, `.bin" download`); n != 1 {
		t.Errorf("the folder of a transfer one part in lists %d files, want 1", n)
	}
	carryBundles(t, river, f.n)
	if _, body := ada.get("/files/received"); !strings.Contains(body, "3 files, 300.0 KB, complete") {
		t.Errorf("the whole transfer in:\n%s", body)
	}
}

// TestReceivedTransferStaysInItsFolder: no path reaches outside a
// transfer's folder, whether by "..", encoded escapes, backslashes, or
// links planted inside the folder.
func TestReceivedTransferStaysInItsFolder(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleMember)
	river := peerOf(t, f, "river")
	src := filepath.Join(t.TempDir(), "guide")
	writeTree(t, src, map[string][]byte{"readme.txt": []byte("read me\n"), "sub/a.txt": []byte("a\n")})
	rep, err := transfer.Send(t.Context(), river, f.n.ID(), []string{src}, transfer.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	carryBundles(t, river, f.n)
	id := rep.IDHex

	// Secrets next to the folder, above it, and outside the node.
	const secret = "TOP-SECRET"
	folder := filepath.Join(transfer.Received(f.n), "river", "guide")
	outside := t.TempDir()
	writeTree(t, filepath.Dir(folder), map[string][]byte{"secret.txt": []byte(secret)})
	writeTree(t, f.n.Dir(), map[string][]byte{"secret.txt": []byte(secret)})
	writeTree(t, outside, map[string][]byte{"secret.txt": []byte(secret)})
	for link, target := range map[string]string{
		"link.txt":            filepath.Join(outside, "secret.txt"),
		"sub/linkdir":         outside,
		"up":                  "..",
		"rel.txt":             "../secret.txt",
		"sub/inside-link.txt": "a.txt",
	} {
		if err := os.Symlink(target, filepath.Join(folder, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}

	ada := f.member("ada", "10.0.0.1")
	if _, body := ada.get("/files/received/" + id + "/readme.txt"); body != "read me\n" {
		t.Fatalf("the transfer's own file: %q", body)
	}
	for _, p := range []string{"/", "/sub/"} {
		_, body := ada.get("/files/received/" + id + p)
		for _, name := range []string{"link.txt", "linkdir", "up/", "rel.txt", "inside-link.txt"} {
			if strings.Contains(body, name) {
				t.Errorf("folder %s lists the link %s", p, name)
			}
		}
	}
	pre := "/files/received/" + id + "/"
	for _, target := range []string{
		pre + "../secret.txt",
		pre + "../../secret.txt",
		pre + "sub/../../secret.txt",
		pre + "%2e%2e/secret.txt",
		pre + "%2E%2E/%2E%2E/secret.txt",
		pre + "..%2fsecret.txt",
		pre + "sub%2f..%2f..%2fsecret.txt",
		pre + "..%5csecret.txt",
		pre + "%2fetc%2fpasswd",
		pre + "/etc/passwd",
		pre + ".%2fsecret.txt",
		pre + "readme.txt%00.html",
		pre + "link.txt",
		pre + "sub/linkdir/secret.txt",
		pre + "sub/linkdir/",
		pre + "up/secret.txt",
		pre + "up/",
		pre + "rel.txt",
		pre + "sub/inside-link.txt",
	} {
		resp, body := ada.getRaw(target)
		for hops := 0; resp.StatusCode == http.StatusMovedPermanently && hops < 3; hops++ {
			resp, body = ada.getRaw(strings.TrimPrefix(resp.Header.Get("Location"), "http://ferry.test"))
		}
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, secret) {
			t.Errorf("GET %s: status %d, want 404\n%.300s", target, resp.StatusCode, body)
		}
	}
}

// FuzzReceivedPath: whatever the request's path below a transfer, what
// receivedPath accepts is "." or a plain relative path: no "..", no ".",
// no empty element, no leading slash, no backslash or NUL.
func FuzzReceivedPath(f *testing.F) {
	for _, s := range []string{"", "a/", "a/b.txt", "../x", "a/../../x", "/etc/passwd", `..\x`, "a//b", "./a", "a\x00b", "école/ça va.txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		name, dir, ok := receivedPath(rel)
		if !ok {
			return
		}
		if name == "." {
			if rel != "" && rel != "/" || !dir {
				t.Fatalf("%q opens the top (dir %v)", rel, dir)
			}
			return
		}
		if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
			t.Fatalf("%q gives %q", rel, name)
		}
		for _, e := range strings.Split(name, "/") {
			if e == "" || e == "." || e == ".." {
				t.Fatalf("%q gives %q, with the element %q", rel, name, e)
			}
		}
		if dir != strings.HasSuffix(rel, "/") {
			t.Fatalf("%q: dir %v", rel, dir)
		}
	})
}
