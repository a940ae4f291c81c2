package carriers_test

import (
	"path/filepath"
	"testing"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

// TestAnnouncementsOverLiveLinks: over live sessions, announcements of
// communities a peer's announcement introduced travel too (they are not
// declined as from an unknown signer), so hill, two hops away, reaches
// north's directory through river; and nothing fails the session.
func TestAnnouncementsOverLiveLinks(t *testing.T) {
	mk := func(name string) *node.Node {
		n, err := node.Init(filepath.Join(t.TempDir(), name), name, node.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	north, river, hill := mk("north"), mk("river"), mk("hill")
	trust := func(a, b *node.Node) {
		for _, p := range [][2]*node.Node{{a, b}, {b, a}} {
			card, err := p[0].Card(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p[1].AddPeer(t.Context(), card, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	trust(north, river)
	trust(river, hill)
	sync := func(a, b *node.Node) {
		t.Helper()
		la, lb := carriers.Pipe(64 << 10)
		ra, rb := carriertest.SyncPair(t, a, b, la, lb, carriers.Options{}, carriers.Options{})
		if ra.Err != nil || rb.Err != nil {
			t.Fatalf("%s–%s: %v / %v", a.Name(), b.Name(), ra.Err, rb.Err)
		}
	}
	announce := func(n *node.Node) {
		t.Helper()
		if _, err := n.Announce(t.Context(), node.AnnounceOptions{Carriers: []string{"tcp"}}); err != nil {
			t.Fatal(err)
		}
	}
	announce(hill)
	sync(river, hill) // hill's announcement, and a contact river–hill (by "pipe")
	announce(river)   // tells of hill
	// One session carries both river's announcement and hill's: hill's
	// may be offered before north knows river's, and is then declined for
	// now; the next session brings it.
	sync(north, river)
	sync(north, river)
	e, err := north.DirectoryEntry(t.Context(), "hill")
	if err != nil {
		t.Fatalf("hill is not in north's directory: %v", err)
	}
	if e.Trust != node.TrustIntroduced || len(e.IntroducedBy) != 1 || e.IntroducedBy[0] != "river" {
		t.Errorf("hill at north: %s, introduced by %v", e.Trust, e.IntroducedBy)
	}
	r, err := north.DirectoryEntry(t.Context(), "river")
	if err != nil || len(r.Links) != 1 || r.Links[0].Carrier != "pipe" {
		t.Errorf("river's announced links at north: %+v (%v)", r, err)
	}
}
