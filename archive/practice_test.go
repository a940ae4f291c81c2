package archive

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"ferry/node"
)

// carryAll ingests at to every bundle from queued for it.
func carryAll(t *testing.T, from, to *node.Node) {
	t.Helper()
	ingestQueued(t, from, to, false, func(int) {})
}

func TestArchiveProposeEndorseAdoptOffers(t *testing.T) {
	ctx := context.Background()
	north, river := pair(t)
	for _, u := range []string{"ada", "bo", "cy"} {
		if err := north.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	ada, bo, cy := Member{Name: "ada", Admin: true}, Member{Name: "bo"}, Member{Name: "cy"}
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"index.html": "<title>Wells</title><p>How to dig a <b>well</b></p><a href=sub/pump.html>pump</a>",
		"sub/pump.html": "<p>hand pump repair</p><script>var secretword = 1</script>"})
	if _, _, err := Propose(ctx, north, Member{Name: "mallory"}, src, nil, Meta{Title: "x"}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("a stranger's proposal: %v", err)
	}
	p, _, err := Propose(ctx, north, bo, src, nil, Meta{Title: "Water guide", Tags: []string{"water"}, Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	if items, _ := List(ctx, north); len(items) != 0 {
		t.Fatalf("a proposal entered the archive: %+v", items)
	}
	if p.State != StateOpen || p.Needed != 1 || p.Files != 2 {
		t.Fatalf("new proposal: %+v", p)
	}
	if _, err := Adopt(ctx, north, ada, p.ID); !errors.Is(err, ErrThreshold) {
		t.Fatalf("adopting without endorsements: %v", err)
	}
	if _, _, err := Endorse(ctx, north, bo, p.ID); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("the proposer's own endorsement: %v", err)
	}
	if p, _, err = Endorse(ctx, north, cy, p.ID); err != nil || p.Needed != 0 || len(p.Endorsers) != 1 {
		t.Fatalf("endorse: %+v %v", p, err)
	}
	if _, err := Adopt(ctx, north, cy, p.ID); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("a member adopting where admins adopt: %v", err)
	}
	a, err := Adopt(ctx, north, ada, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Proposal.State != StateAdopted || a.Proposal.DecidedBy != "ada" || len(a.Offers) != 1 || a.Offers[0].Peer != "river" || a.Offers[0].Error != "" {
		t.Fatalf("adoption: %+v %+v", a.Proposal, a.Offers)
	}
	if _, err := Adopt(ctx, north, ada, p.ID); !errors.Is(err, ErrDecided) {
		t.Fatalf("adopting twice: %v", err)
	}
	if items, _ := List(ctx, north); len(items) != 1 || items[0].Title != "Water guide" {
		t.Fatalf("north's archive after adoption: %+v", items)
	}
	carryAll(t, north, river)
	items, err := List(ctx, river)
	if err != nil || len(items) != 1 || !items[0].Complete || items[0].ID != p.Item {
		t.Fatalf("river's archive: %+v %v", items, err)
	}
	h, err := History(ctx, north, 50)
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, e := range h {
		acts = append(acts, e.Action+":"+e.Who)
	}
	if got := strings.Join(acts, " "); !strings.Contains(got, "proposed:bo") || !strings.Contains(got, "endorsed:cy") ||
		!strings.Contains(got, "adopted:ada") || !strings.Contains(got, "offered:river") {
		t.Fatalf("north's history: %s", got)
	}
	if h, _ := History(ctx, river, 50); len(h) != 1 || h[0].Action != "received" || h[0].Who != "north" {
		t.Fatalf("river's history: %+v", h)
	}

	// The adopted item as a file system, and its text searchable.
	item := [16]byte(mustHex(t, p.Item))
	fsys, err := OpenItem(ctx, river, item)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "index.html", "sub/pump.html"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../index.html", "/index.html", "sub/../../x", ""} {
		if _, err := fsys.Open(bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	f, _ := fsys.Open("sub/pump.html")
	f.(io.Seeker).Seek(3, io.SeekStart)
	if b, _ := io.ReadAll(f); string(b) != "hand pump repair</p><script>var secretword = 1</script>" {
		t.Fatalf("read after seek: %q", b)
	}
	if k, err := Index(ctx, river); err != nil || k != 1 {
		t.Fatalf("index: %d %v", k, err)
	}
	if k, _ := Index(ctx, river); k != 0 {
		t.Fatalf("indexing again did %d", k)
	}
	hits, err := Search(ctx, river, "pump rep", 10)
	if err != nil || len(hits) != 1 || hits[0].Path != "sub/pump.html" {
		t.Fatalf("search: %+v %v", hits, err)
	}
	if hits, _ := Search(ctx, river, "water", 10); len(hits) != 1 || hits[0].Path != "" {
		t.Fatalf("search by tag: %+v", hits)
	}
	if hits, _ := Search(ctx, river, "secretword", 10); len(hits) != 0 {
		t.Fatalf("script text was indexed: %+v", hits)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		t.Fatalf("item %q: %v", s, err)
	}
	return b
}

func TestArchiveAutoAdoptAndSettings(t *testing.T) {
	ctx := context.Background()
	north, _ := pair(t)
	for _, u := range []string{"bo", "cy", "di"} {
		north.AddUser(ctx, u)
	}
	if err := SetSettings(ctx, north, Settings{Threshold: 2, Adopt: "everyone"}); err == nil {
		t.Fatal("a bad adopt setting was taken")
	}
	if err := SetSettings(ctx, north, Settings{Threshold: 2, Adopt: AdoptAuto}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.txt": "seeds"})
	p, _, err := Propose(ctx, north, Member{Name: "bo"}, src, nil, Meta{Title: "Seeds"})
	if err != nil {
		t.Fatal(err)
	}
	if _, a, err := Endorse(ctx, north, Member{Name: "cy"}, p.ID); err != nil || a != nil {
		t.Fatalf("first of two endorsements: %v %v", a, err)
	}
	_, a, err := Endorse(ctx, north, Member{Name: "di"}, p.ID)
	if err != nil || a == nil || a.Proposal.State != StateAdopted || a.Proposal.DecidedBy != "auto:di" {
		t.Fatalf("the endorsement reaching the threshold: %+v %v", a, err)
	}
}

func TestArchiveUnpackRefusesHostileArchives(t *testing.T) {
	for _, c := range hostileArchives(t) {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dst := base + "/root"
			os.Mkdir(dst, 0o755)
			root, err := os.OpenRoot(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			f, err := os.Open(c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = Unpack(c.path, f, root, UnpackLimits{MaxEntries: 1000, MaxBytes: 10 << 20})
			var ue *UnsafeError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("got %v, want a refusal saying %q", err, c.reason)
			}
			// Nothing outside the root.
			ents, _ := os.ReadDir(base)
			if len(ents) != 1 {
				t.Fatalf("written next to the root: %v", ents)
			}
			filepathWalk(t, dst, func(p string, d fs.DirEntry) {
				if d.Type()&fs.ModeSymlink != 0 {
					t.Errorf("a link was made: %s", p)
				}
			})
		})
	}
}

func TestArchiveUnpackGood(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/site.zip"
	writeZip(t, path, []zipEntry{{name: "site/", dir: true}, {name: "site/index.html", body: "hi"}, {name: "./site/a/b.css", body: "p{}"}})
	f, _ := os.Open(path)
	defer f.Close()
	os.Mkdir(dir+"/out", 0o755)
	root, _ := os.OpenRoot(dir + "/out")
	defer root.Close()
	n, err := Unpack(path, f, root, DefaultUnpackLimits)
	if err != nil || n != 2 {
		t.Fatalf("unpack: %d %v", n, err)
	}
	if b, _ := os.ReadFile(dir + "/out/site/a/b.css"); string(b) != "p{}" {
		t.Fatalf("b.css: %q", b)
	}
}

func FuzzArchiveCheckZipDirectory(f *testing.F) {
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(zipBytes(f, []zipEntry{{name: "a.txt", body: "x"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := strings.NewReader(string(b))
		if err := CheckZipDirectory(r, int64(len(b)), 10); err != nil {
			var ue *UnsafeError
			if !errors.As(err, &ue) {
				t.Fatalf("not an UnsafeError: %v", err)
			}
		}
	})
}

func FuzzArchiveHTMLText(f *testing.F) {
	f.Add([]byte("<title>T</title><p>a &amp; b<script>x</script><!-- c -->"))
	f.Add([]byte("<scrip<style"))
	f.Fuzz(func(t *testing.T, b []byte) {
		title, text := HTMLText(b)
		if strings.Contains(title+text, "\x00") && !strings.Contains(string(b), "\x00") && !strings.Contains(string(b), "&#0") {
			t.Fatalf("a NUL appeared: %q %q", title, text)
		}
	})
}
