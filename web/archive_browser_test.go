package web_test

import (
	"archive/zip"
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// hostilePage is a saved page whose script tries to reach the inbox: its
// cookies, its storage, its pages and API. It writes what it saw into
// #result.
const hostilePage = `<!doctype html><title>Saved page</title><p id=result>not run</p>
<script>
(async function () {
  var out = [];
  try { out.push("cookie=" + JSON.stringify(document.cookie)); } catch (e) { out.push("cookie-error=" + e.name); }
  try { out.push("storage=" + localStorage.length); } catch (e) { out.push("storage-error=" + e.name); }
  try {
    var r = await fetch("/archive", {credentials: "include"});
    var t = await r.text();
    out.push("fetch=" + r.status + ":" + (t.indexOf("Archive") >= 0));
  } catch (e) { out.push("fetch-error=" + e.name); }
  try {
    var r2 = await fetch(location.protocol + "//" + location.host + "/rooms", {method: "POST", credentials: "include", mode: "no-cors", body: "title=pwned"});
    out.push("post=" + r2.type);
  } catch (e) { out.push("post-error=" + e.name); }
  document.getElementById("result").textContent = out.join(" ");
  document.getElementById("result").setAttribute("data-done", "1");
})();
</script>`

// writeSiteZip writes a small saved website as a .zip: pages with
// relative links, a stylesheet, an image, and the hostile page.
func writeSiteZip(t *testing.T, path string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := range 16 {
		img.Set(i%4, i/4, color.RGBA{200, 30, 30, 255})
	}
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, img)
	files := []struct{ name, body string }{
		{"wells/index.html", `<!doctype html><html><head><title>Village wells</title><link rel="stylesheet" href="css/site.css"></head>
<body><h1>Village wells</h1><img id="logo" src="img/logo.png" alt="logo"><p>How to keep a well clean.</p>
<p><a id="next" href="pages/pump.html">Hand pumps</a> · <a href="evil.html">a saved page with a script</a></p></body></html>`},
		{"wells/css/site.css", `body { background: rgb(1, 2, 3); color: rgb(250, 250, 250); }`},
		{"wells/img/logo.png", pngBuf.String()},
		{"wells/pages/pump.html", `<!doctype html><title>Hand pumps</title><link rel="stylesheet" href="../css/site.css"><h1 id="pump">Hand pumps</h1><p>Replace the leather cup washer every year.</p><a href="../index.html">back</a>`},
		{"wells/evil.html", hostilePage},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the tab's page.
func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	ctx, cancel := p.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
	return v
}

var itemHrefRE = regexp.MustCompile(`/archive/items/([0-9a-f]{32})`)

// TestBrowserArchive runs the archive's practice in chromium across two
// communities: a member (JavaScript off) proposes a saved website by
// uploading a .zip, the admin endorses and adopts it, the bundles are
// carried to river with ferry export/import, and river's admin browses,
// searches and opens the site, whose relative links, stylesheet and
// image work. A saved page's script can read neither the inbox's cookie
// nor call its API.
func TestBrowserArchive(t *testing.T) {
	b := newBrowser(t)
	north, river := startServer(t, "north"), startServer(t, "river")
	ada := newTab(t, b, "ada (north admin)", true)
	rio := newTab(t, b, "rio (river admin)", true)
	makeAdmin(t, ada, north, "ada", "")
	makeAdmin(t, rio, river, "rio", "")
	exchangeCards(t, ada, rio, north, river)

	link := invite(t, ada, north, "")
	bea := newTab(t, b, "bea (north member, no JavaScript)", false)
	bea.open(link)
	bea.fill("#user", "bea", "#display", "Bea", "#password", "pass-bea", "#confirm", "pass-bea")
	if st := bea.submit("form button[type=submit]"); st != 200 {
		t.Fatalf("bea joining: %d", st)
	}

	// Bea proposes the site, as a .zip, with JavaScript off.
	zipPath := filepath.Join(t.TempDir(), "wells.zip")
	writeSiteZip(t, zipPath)
	bea.open(north.url + "/archive/proposals")
	bea.fill("#ptitle", "Village wells", "#pdesc", "Keeping wells clean; hand pump repair.", "#ptags", "water, health",
		"#plang", "en", "#psource", "https://wells.example/")
	ctx, cancel := bea.step()
	err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#pfiles"), []string{zipPath}))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if st := bea.submit("#propose button[type=submit]"); st != 200 {
		t.Fatalf("proposing: %d", st)
	}
	if got := bea.text("#proposals"); !strings.Contains(got, "Village wells") || !strings.Contains(got, "no endorsement yet") {
		t.Fatalf("bea's proposals page: %q", got)
	}
	if bea.count("#proposals .endorse") != 0 {
		t.Error("bea may endorse her own proposal")
	}
	bea.shot("archive-proposals-nojs")

	// A folder, through the folder picker: each file keeps its path.
	folder := filepath.Join(t.TempDir(), "seeds")
	os.MkdirAll(filepath.Join(folder, "notes"), 0o755)
	os.WriteFile(filepath.Join(folder, "index.html"), []byte("<p>seed bank</p>"), 0o644)
	os.WriteFile(filepath.Join(folder, "notes", "maize.txt"), []byte("maize: dry, cool, dark"), 0o644)
	bea.open(north.url + "/archive/proposals")
	bea.fill("#ptitle", "Seed bank")
	ctx, cancel = bea.step()
	err = chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#pfolder"), []string{folder}))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if st := bea.submit("#propose button[type=submit]"); st != 200 {
		t.Fatalf("proposing a folder: %d", st)
	}
	if got := bea.text("#proposals"); !strings.Contains(got, "Seed bank") || !strings.Contains(got, "2 files") {
		t.Fatalf("the folder proposal: %q", got)
	}
	if st := bea.submit("#proposals li:first-child form[action$='/withdraw'] button"); st != 200 {
		t.Fatalf("withdrawing: %d", st)
	}

	// Ada looks at what was proposed, then endorses and adopts it.
	ada.open(north.url + "/archive/proposals")
	if st := ada.submit("#proposals a[href='/archive/proposals/1']"); st != 200 {
		t.Fatalf("the proposal's page: %d", st)
	}
	ada.shot("archive-proposal")
	if st := ada.submit("#open-proposal"); st != 200 || !strings.Contains(ada.url(), "/archive/pview/1/ada.") || ada.text("h1") != "Village wells" {
		t.Fatalf("looking at the proposal: %d %s", st, ada.url())
	}
	ada.open(north.url + "/archive/proposals")
	if ada.count("#proposals .adopt") != 0 {
		t.Error("adopt offered before any endorsement")
	}
	if st := ada.submit("#proposals .endorse"); st != 200 {
		t.Fatalf("endorsing: %d", st)
	}
	if got := ada.text("#proposals .endorsements"); !strings.Contains(got, "endorsed by ada") || !strings.Contains(got, "ready") {
		t.Errorf("after the endorsement: %q", got)
	}
	ada.shot("archive-proposals")
	if st := ada.submit("#proposals .adopt"); st != 200 {
		t.Fatalf("adopting: %d", st)
	}
	if got := ada.text("#decided"); !strings.Contains(got, "adopted by ada") {
		t.Errorf("decided: %q", got)
	}
	ada.open(north.url + "/archive/history")
	hist := ada.text("#history")
	for _, w := range []string{"bea proposed Village wells", "ada endorsed Village wells", "ada adopted Village wells", "offered Village wells to river"} {
		if !strings.Contains(hist, w) {
			t.Errorf("north's history lacks %q: %q", w, hist)
		}
	}
	ada.shot("archive-history")

	// Carried to river.
	carry(t, north, river, "river")
	rio.open(river.url + "/archive")
	items := rio.text("#archive-items")
	if !strings.Contains(items, "Village wells") || !strings.Contains(items, "#water") || !strings.Contains(items, "wells.example") {
		t.Fatalf("river's archive: %q", items)
	}
	rio.shot("archive")
	for _, path := range []string{"/archive", "/archive/proposals", "/archive/history"} {
		rio.open(river.url + path)
		if w := eval[int](rio, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("%s is %d px wide on a 360 px screen", path, w)
		}
	}
	rio.open(river.url + "/archive?q=leather+washer")
	if got := rio.text("#archive-hits"); !strings.Contains(got, "pages/pump.html") {
		t.Errorf("river's search: %q", got)
	}
	rio.shot("archive-search")
	rio.open(river.url + "/archive/history")
	if got := rio.text("#history"); !strings.Contains(got, "received Village wells from north") {
		t.Errorf("river's history: %q", got)
	}
	rio.open(river.url + "/archive")
	rio.submit("#archive-items a")
	m := itemHrefRE.FindStringSubmatch(rio.url())
	if m == nil {
		t.Fatalf("not on an item page: %s", rio.url())
	}
	rio.shot("archive-item")
	if st := rio.submit("#open-item"); st != 200 || !strings.Contains(rio.url(), "/archive/view/"+m[1]+"/rio.") {
		t.Fatalf("opening the site: %d %s", st, rio.url())
	}
	if bg := eval[string](rio, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(1, 2, 3)" {
		t.Errorf("the site's stylesheet did not load: background %q", bg)
	}
	if w := eval[int](rio, `document.getElementById("logo").naturalWidth`); w != 4 {
		t.Errorf("the site's image did not load: width %d", w)
	}
	rio.shot("archive-site")
	if st := rio.submit("#next"); st != 200 || rio.text("#pump") != "Hand pumps" {
		t.Errorf("a relative link: %d %s", st, rio.url())
	}
	if bg := eval[string](rio, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(1, 2, 3)" {
		t.Errorf("../css/site.css from a subfolder: background %q", bg)
	}

	// The hostile page, opened by a logged-in admin whose browser holds a
	// cookie a script could read on the inbox's own origin.
	ada.open(north.url + "/archive")
	ctx, cancel = ada.step()
	err = chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.cookie = "probe=inbox-secret; path=/"`))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if c := eval[string](ada, `document.cookie`); !strings.Contains(c, "inbox-secret") {
		t.Fatalf("the probe cookie is not set on the inbox: %q", c)
	}
	id := itemHrefRE.FindStringSubmatch(eval[string](ada, `document.querySelector("#archive-items a").href`))
	if id == nil {
		t.Fatal("no item on north's archive page")
	}
	ada.open(north.url + "/archive/items/" + id[1] + "/open?path=wells/evil.html")
	ada.waitFor("#result[data-done]", stepTimeout)
	res := ada.text("#result")
	t.Logf("the saved page's script saw: %s", res)
	if strings.Contains(res, "inbox-secret") || !strings.Contains(res, "cookie-error=SecurityError") {
		t.Errorf("the saved page read cookies: %s", res)
	}
	if !strings.Contains(res, "storage-error=SecurityError") {
		t.Errorf("the saved page reached storage: %s", res)
	}
	if !strings.Contains(res, "fetch-error=TypeError") || !strings.Contains(res, "post-error=TypeError") {
		t.Errorf("the saved page called the inbox: %s", res)
	}
	ada.shot("archive-hostile-page")
	ada.open(north.url + "/rooms")
	if strings.Contains(ada.text("main"), "pwned") {
		t.Error("the saved page made a room")
	}
	// The inbox session is intact.
	if st := ada.open(north.url + "/archive"); st != 200 || !strings.HasSuffix(ada.url(), "/archive") {
		t.Errorf("after the saved page: %d %s", st, ada.url())
	}
}
