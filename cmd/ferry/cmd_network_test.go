package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNetworkCommands runs 'ferry network' and 'ferry peer approve' on a
// chain north–river–hill carried by 'ferry export' and 'ferry import':
// hill is listed at north as introduced by river, cannot be written to,
// and becomes a peer by 'ferry peer approve'.
func TestNetworkCommands(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	hill := newCommunity(t, root, "hill", "carol")
	introduce(t, north, river)
	introduce(t, river, hill)
	if out := mustFerry(t, "network", "locate", "--data", north.data, "46.234,6.15"); !strings.Contains(out, "46.2,6.2") {
		t.Errorf("locate: %q", out)
	}
	if r := ferry(t, "network", "locate", "--data", north.data, "91,0"); r.code != 1 || !strings.Contains(r.stderr, "out of range") {
		t.Errorf("locate 91,0: exit %d, %q", r.code, r.stderr)
	}
	if r := ferry(t, "network", "locate", "--data", north.data, "north"); r.code != 2 {
		t.Errorf("locate north: exit %d, want a usage error", r.code)
	}
	carry := func(from, to community) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "out")
		mustFerry(t, "export", "--data", from.data, "--to", to.name, "--out", dir)
		// An announcement read before the one that introduces its node
		// is taken in on a second pass.
		mustFerry(t, "import", "--data", to.data, dir)
	}
	for _, c := range []community{north, river, hill} {
		mustFerry(t, "network", "announce", "--data", c.data, "--carrier", "usb")
	}
	carry(hill, river) // hill's announcement, and a contact river–hill
	carry(river, hill)
	mustFerry(t, "network", "announce", "--data", river.data) // tells of hill
	carry(river, north)

	out := mustFerry(t, "network", "--data", north.data)
	if !strings.Contains(out, "introduced by river") || !strings.Contains(out, "ferry peer approve hill") {
		t.Fatalf("ferry network at north:\n%s", out)
	}
	if r := ferry(t, "send", "--data", north.data, "--from", "alice", "--to", "carol@hill", "too early"); r.code == 0 {
		t.Error("north could write to hill before approving it")
	}
	if r := ferry(t, "peer", "approve", "--data", north.data, "lake"); r.code != 1 || !strings.Contains(r.stderr, "not in the network directory") {
		t.Errorf("approve lake: exit %d, %q", r.code, r.stderr)
	}
	if out := mustFerry(t, "peer", "approve", "--data", north.data, "hill"); !strings.Contains(out, "approved hill") {
		t.Errorf("approve: %q", out)
	}
	var dir []struct {
		Name  string `json:"name"`
		Trust string `json:"trust"`
	}
	decodeJSON(t, "network --json", mustFerry(t, "network", "--json", "--data", north.data), &dir)
	trust := map[string]string{}
	for _, e := range dir {
		trust[e.Name] = e.Trust
	}
	if trust["hill"] != "peer" || trust["river"] != "peer" || trust["north"] != "self" {
		t.Errorf("after approval: %v", trust)
	}
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "carol@hill", "now it can go")
}
