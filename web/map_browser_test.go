package web_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// networkEntry is the part of 'ferry network --json' the test reads.
type networkEntry struct {
	Name         string   `json:"name"`
	Trust        string   `json:"trust"`
	IntroducedBy []string `json:"introduced_by"`
	Links        []struct {
		To      string `json:"to"`
		Carrier string `json:"carrier"`
	} `json:"links"`
}

func network(t *testing.T, data string) []networkEntry {
	t.Helper()
	cmd := exec.Command(ferryPath(t), "network", "--json", "--data", data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ferry network --json: %v", err)
	}
	var es []networkEntry
	if err := json.Unmarshal(out, &es); err != nil {
		t.Fatalf("ferry network --json: %v\n%s", err, out)
	}
	return es
}

// TestMapOfFiveCommunitiesLinkedBySticks is the first acceptance
// test: five communities in a chain, north–river–hill–lake–forest, each
// trusting only its neighbours and linked only by USB sticks (one per
// pair, synced through the real binary). Their announcements spread until
// every directory holds all five; north's map page, in chromium at 360 px,
// shows the five and the four links; hill, introduced by river, becomes a
// trusted peer of north only when north's admin approves it.
func TestMapOfFiveCommunitiesLinkedBySticks(t *testing.T) {
	root := t.TempDir()
	names := []string{"north", "river", "hill", "lake", "forest"}
	locs := []string{"47.4,8.5", "46.9,7.4", "46.2,6.1", "45.2,5.7", "44.4,4.8"}
	data := map[string]string{}
	for i, n := range names {
		data[n] = filepath.Join(root, n)
		ferry(t, "init", "--data", data[n], "--name", n)
		ferry(t, "user", "add", "--data", data[n], "u"+n)
		ferry(t, "network", "locate", "--data", data[n], locs[i])
	}
	for i := 0; i+1 < len(names); i++ {
		a, b := data[names[i]], data[names[i+1]]
		ferry(t, "peer", "add", "--data", b, strings.TrimSpace(ferry(t, "card", "--data", a)))
		ferry(t, "peer", "add", "--data", a, strings.TrimSpace(ferry(t, "card", "--data", b)))
	}
	sticks := make([]string, len(names)-1)
	for i := range sticks {
		sticks[i] = filepath.Join(root, fmt.Sprintf("stick-%s-%s", names[i], names[i+1]))
		if err := os.Mkdir(sticks[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A round walks the sticks down the chain, each from one end of its
	// pair to the other, then back up. The first one makes contacts; the
	// announcements made after it report them.
	round := func() {
		for i, s := range sticks {
			ferry(t, "usb", "sync", "--data", data[names[i]], s)
			ferry(t, "usb", "sync", "--data", data[names[i+1]], s)
		}
		for i := len(sticks) - 1; i >= 0; i-- {
			ferry(t, "usb", "sync", "--data", data[names[i+1]], sticks[i])
			ferry(t, "usb", "sync", "--data", data[names[i]], sticks[i])
		}
	}
	round()
	for _, n := range names {
		ferry(t, "network", "announce", "--data", data[n], "--carrier", "usb")
	}
	rounds := 0
	for full := false; !full; {
		// One walk down and back up carries every announcement to every
		// node: a sync takes in an announcement whose introducer is on the
		// same stick, whatever order it reads them in.
		if rounds++; rounds > 1 {
			for _, n := range names {
				t.Logf("%s: %+v", n, network(t, data[n]))
			}
			t.Fatalf("after a walk down the chain and back not every directory holds all five communities")
		}
		round()
		full = true
		for _, n := range names {
			if len(network(t, data[n])) != len(names) {
				full = false
			}
		}
	}
	north := network(t, data["north"])
	trust := map[string]string{}
	var links []string
	for _, e := range north {
		trust[e.Name] = e.Trust
		for _, l := range e.Links {
			pair := []string{e.Name, l.To}
			slices.Sort(pair)
			links = append(links, pair[0]+"-"+pair[1]+"/"+l.Carrier)
		}
		if e.Name == "hill" && !slices.Equal(e.IntroducedBy, []string{"river", "lake"}) {
			t.Errorf("hill is introduced by %v, want river (a trusted peer) first, then lake", e.IntroducedBy)
		}
	}
	slices.Sort(links)
	links = slices.Compact(links)
	if want := []string{"forest-lake/usb", "hill-lake/usb", "hill-river/usb", "north-river/usb"}; !slices.Equal(links, want) {
		t.Errorf("north knows the links %v, want %v", links, want)
	}
	if want := map[string]string{"north": "self", "river": "peer", "hill": "introduced", "lake": "introduced", "forest": "introduced"}; fmt.Sprint(trust) != fmt.Sprint(want) {
		t.Errorf("north's trust: %v, want %v", trust, want)
	}

	// Not trusted yet: north cannot write to hill.
	if out, err := exec.Command(ferryPath(t), "send", "--data", data["north"], "--from", "unorth", "--to", "uhill@hill", "too early").CombinedOutput(); err == nil {
		t.Errorf("north could write to hill before approving it: %s", out)
	}

	// north's web inbox: the map.
	s := newServer(t, data["north"])
	s.start(t, "serve", "--data", data["north"], "--listen", "127.0.0.1:0", "--sync-listen", "off", "--discover=false", "--usb-watch", "off")
	b := newBrowser(t)
	for _, js := range []bool{false, true} {
		ada := newTab(t, b, fmt.Sprintf("ada (js %v)", js), js)
		if !js {
			makeAdmin(t, ada, s, "ada", "")
			// The admin moves north a little, from the map page.
			ada.open(s.url + "/map")
			ada.fill("#lat", "47.3", "#lon", "8.55")
			if st := ada.submit("form.located button[type=submit]"); st != 200 || !strings.Contains(ada.text(".flash"), "Location set") {
				t.Fatalf("setting the location: %d", st)
			}
			if ada.count("input#lat[value='47.3']") != 1 || ada.count("input#lon[value='8.6']") != 1 {
				t.Errorf("the form does not show the new location, rounded to 47.3, 8.6")
			}
		} else {
			ada.open(s.url + "/login")
			ada.fill("#user", "ada", "#password", "secret-ada")
			ada.submit("form button[type=submit]")
		}
		if st := ada.open(s.url + "/map"); st != 200 {
			t.Fatalf("map page: %d", st)
		}
		if n := ada.count("svg#map a.community"); n != 5 {
			t.Errorf("the map shows %d communities, want 5", n)
		}
		if n := ada.count("svg#map line.link[data-carrier=usb]"); n != 4 {
			t.Errorf("the map shows %d usb links, want 4", n)
		}
		if n := ada.count("svg#map a.community[data-trust=introduced]"); n != 3 {
			t.Errorf("the map shows %d introduced communities, want 3", n)
		}
		if n := ada.count("#communities li"); n != 5 {
			t.Errorf("the list shows %d communities, want 5", n)
		}
		if wide := ada.count("html"); wide != 1 {
			t.Fatal("no page")
		}
		if !js {
			ada.shot("map")
			if st := ada.open(s.url + "/map?view=world"); st != 200 || ada.count("svg#map a.community") != 5 {
				t.Errorf("the whole-world map: %d", st)
			}
			ada.shot("map-world")
			continue
		}
		// Approval, from hill's page.
		if n := ada.count("svg#map a.community[data-name=hill][href^='/map/']"); n != 1 {
			t.Errorf("hill on the map links to no page of its own")
		}
		ada.open(s.url + "/map")
		if st := ada.submit("#communities li[data-name=hill] a"); st != 200 {
			t.Fatalf("hill's page: %d", st)
		}
		if got := ada.text("#trust"); !strings.Contains(got, "introduced by river") {
			t.Errorf("hill's page says %q, want introduced by river", got)
		}
		ada.shot("map-community")
		if st := ada.submit("#approve"); st != 200 {
			t.Fatalf("approve: %d", st)
		}
		if got := ada.text("#trust"); got != "trusted peer" {
			t.Errorf("after approval hill's page says %q", got)
		}
	}
	for _, e := range network(t, data["north"]) {
		if e.Name == "hill" && e.Trust != "peer" {
			t.Errorf("after approval 'ferry network' says hill is %s", e.Trust)
		}
	}
	ferry(t, "send", "--data", data["north"], "--from", "unorth", "--to", "uhill@hill", "approved, so this can go")
}
