package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchivePracticeCLI: a member proposes a folder, another endorses
// it, an admin adopts it, and the item reaches another community carried
// by ferry export/import.
func TestArchivePracticeCLI(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "ana")
	river := newCommunity(t, root, "river", "rui")
	mustFerry(t, "user", "add", "--data", north.data, "bo")
	introduce(t, north, river)
	site := filepath.Join(root, "site")
	os.MkdirAll(filepath.Join(site, "pages"), 0o755)
	os.WriteFile(filepath.Join(site, "index.html"), []byte(`<title>Clinic</title><a href="pages/fever.html">fever</a>`), 0o644)
	os.WriteFile(filepath.Join(site, "pages", "fever.html"), []byte(`<p>oral rehydration salts</p>`), 0o644)

	var p struct {
		ID     int64  `json:"id"`
		Item   string `json:"item"`
		State  string `json:"state"`
		Needed int    `json:"needed"`
	}
	out := mustFerry(t, "archive", "propose", "--data", north.data, "--as", "bo", site, "--title", "Clinic guide", "--tags", "health", "--json")
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.State != "open" || p.Needed != 1 {
		t.Fatalf("propose: %+v %v\n%s", p, err, out)
	}
	id := fmt.Sprint(p.ID)
	if it := listArchive(t, north); len(it) != 0 {
		t.Fatalf("a proposal is in the archive: %+v", it)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"archive", "adopt", "--data", north.data, "--as", "ana", id}, "not enough endorsements"},
		{[]string{"archive", "endorse", "--data", north.data, "--as", "bo", id}, "other than its proposer"},
		{[]string{"archive", "endorse", "--data", north.data, "--as", "nobody", id}, "not a member"},
		{[]string{"archive", "endorse", "--data", north.data, id}, "want --as USER"},
		{[]string{"archive", "settings", "--data", north.data, "--adopt", "anyone"}, "adopt is"},
	} {
		r := ferry(t, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("ferry %v: exit %d, stderr %q, want %q", c.args[1:], r.code, r.stderr, c.want)
		}
	}
	mustFerry(t, "archive", "endorse", "--data", north.data, "--as", "ana", id)
	var a struct {
		Proposal struct{ State, DecidedBy string } `json:"proposal"`
		Offers   []struct {
			Peer    string
			Bundles int
			Error   string
		} `json:"offers"`
	}
	out = mustFerry(t, "archive", "adopt", "--data", north.data, "--as", "ana", id, "--json")
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.Proposal.State != "adopted" || len(a.Offers) != 1 ||
		a.Offers[0].Peer != "river" || a.Offers[0].Bundles != 1 || a.Offers[0].Error != "" {
		t.Fatalf("adopt: %+v %v\n%s", a, err, out)
	}
	if got := mustFerry(t, "archive", "proposals", "--data", north.data, "--state", "adopted"); !strings.Contains(got, "Clinic guide") || !strings.Contains(got, "endorsed by [ana]") {
		t.Errorf("proposals: %s", got)
	}
	hist := mustFerry(t, "archive", "history", "--data", north.data)
	for _, w := range []string{"proposed  bo", "endorsed  ana", "adopted   ana", "offered   river"} {
		if !strings.Contains(hist, w) {
			t.Errorf("history lacks %q:\n%s", w, hist)
		}
	}
	stick := filepath.Join(root, "stick")
	mustFerry(t, "export", "--data", north.data, "--to", "river", "--out", stick)
	mustFerry(t, "import", "--data", river.data, stick)
	items := listArchive(t, river)
	if len(items) != 1 || items[0].ID != p.Item || !items[0].Complete {
		t.Fatalf("river's archive: %+v", items)
	}
	got := filepath.Join(root, "got")
	mustFerry(t, "archive", "get", "--data", river.data, p.Item, "--out", got)
	sameTree(t, site, got)
	if h := mustFerry(t, "archive", "history", "--data", river.data); !strings.Contains(h, "received  north") {
		t.Errorf("river's history: %s", h)
	}
}
