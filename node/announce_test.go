package node_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// pass exports everything from one node for another into a folder and
// ingests it, repeating the files that were refused for want of an
// introduction once others have been taken in (a stick read twice). It
// returns the refusals that remain.
func pass(t *testing.T, from, to *node.Node) []error {
	t.Helper()
	dir := t.TempDir()
	if _, err := from.Export(t.Context(), to.ID(), dir); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
	var left []error
	for range 2 {
		left = nil
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = to.Ingest(t.Context(), fh)
			fh.Close()
			var re *node.RefusedError
			if errors.As(err, &re) {
				left = append(left, err)
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	return left
}

func names(es []node.DirectoryEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name+":"+string(e.Trust))
	}
	return out
}

// TestAnnouncementsSpreadAlongAChain: north and hill know only river; their
// announcements reach each other through river, each appears in the
// other's directory as introduced by river, and only approval makes it a
// peer.
func TestAnnouncementsSpreadAlongAChain(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	north, river, hill := newNode(t, "north", c), newNode(t, "river", c), newNode(t, "hill", c)
	link(t, north, river)
	link(t, river, hill)
	ctx := t.Context()
	if err := north.SetLocation(ctx, &node.Location{Lat: 46.2345, Lon: 6.149}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node.Node{north, river, hill} {
		if _, err := n.Announce(ctx, node.AnnounceOptions{Carriers: []string{"usb"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Contacts, then fresh announcements that report them.
	c.t = c.t.Add(time.Hour)
	pass(t, north, river)
	pass(t, river, north)
	pass(t, river, hill)
	pass(t, hill, river)
	c.t = c.t.Add(time.Hour)
	for _, n := range []*node.Node{north, river, hill} {
		if ok, err := n.AnnounceIfStale(ctx, node.AnnounceOptions{}, 30*time.Minute); err != nil || !ok {
			t.Fatalf("%s did not announce again: %v", n.Name(), err)
		}
	}
	if ok, _ := north.AnnounceIfStale(ctx, node.AnnounceOptions{}, time.Hour); ok {
		t.Error("north announced again although its announcement is fresh")
	}
	c.t = c.t.Add(time.Hour)
	for range 2 {
		for _, p := range [][2]*node.Node{{north, river}, {hill, river}, {river, north}, {river, hill}} {
			if left := pass(t, p[0], p[1]); len(left) > 0 {
				t.Errorf("%s → %s: refused %v", p[0].Name(), p[1].Name(), left)
			}
		}
	}

	dir, err := north.Directory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(dir), []string{"hill:introduced", "north:self", "river:peer"}; !slices.Equal(got, want) {
		t.Fatalf("north's directory: %v, want %v", got, want)
	}
	h := dir[0]
	if !slices.Equal(h.IntroducedBy, []string{"river"}) {
		t.Errorf("hill introduced by %v, want river", h.IntroducedBy)
	}
	me := dir[1]
	if me.Location == nil || me.Location.Lat != 46.2 || me.Location.Lon != 6.1 {
		t.Errorf("north's location %+v, want 46.2,6.1 (tenths)", me.Location)
	}
	rv := dir[2]
	var heard []string
	for _, l := range rv.Links {
		heard = append(heard, l.ToName+"/"+l.Carrier)
	}
	slices.Sort(heard)
	if !slices.Equal(heard, []string{"hill/file", "north/file"}) {
		t.Errorf("river's links %v, want hill and north by file", heard)
	}

	// Not trusted: a message from hill is refused at north.
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "hill"}, "hello"); err == nil {
		t.Error("north could write to hill before approving it")
	}
	p, err := north.Approve(ctx, "hill", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != hill.ID() {
		t.Fatalf("approved %s", p.ID.Short())
	}
	e, err := north.DirectoryEntry(ctx, "hill")
	if err != nil || e.Trust != node.TrustPeer {
		t.Fatalf("after approval hill is %+v, %v", e, err)
	}
	if _, err := north.Send(ctx, "user", node.Address{User: "user", Node: "hill"}, "hello"); err != nil {
		t.Errorf("north cannot write to hill after approving it: %v", err)
	}

	// Expiry: a month later, nothing is left but north's own (stale) entry.
	c.t = c.t.Add(node.DefaultAnnounceTTL)
	if dir, err = north.Directory(ctx); err != nil || len(dir) != 0 {
		t.Errorf("after expiry the directory holds %v (%v)", names(dir), err)
	}
}

// sealAnnouncement makes a bundle of kind announce by hand, for the
// refusal tests.
func sealAnnouncement(t *testing.T, signer *node.Node, dest bundle.Destination, created time.Time, ttl time.Duration, a *bundle.Announcement) []byte {
	t.Helper()
	body, err := a.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "b")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, pub := bundle.PublicKeys()
	h := bundle.Header{Kind: bundle.KindAnnounce, Source: signer.ID(), Dest: dest, Seq: 1, Created: created, Expires: created.Add(ttl)}
	w, err := bundle.NewWriter(f, h, signer.Identity().Sign, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(bundle.RecordAnnounce, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadAnnouncementsRefused: forged, expired, misaddressed and
// unintroduced announcements are refused with a reason, and the directory
// is unchanged.
func TestBadAnnouncementsRefused(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	north, river, stranger := newNode(t, "north", c), newNode(t, "river", c), newNode(t, "stranger", c)
	link(t, north, river)
	ctx := t.Context()
	riverCard, _ := river.Card(nil, nil)
	strangerCard, _ := stranger.Card(nil, nil)
	everyone := bundle.Destination{Type: bundle.DestEveryone}
	ann := func(card string) *bundle.Announcement {
		return &bundle.Announcement{Issued: c.t, Card: card}
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"someone else's card", sealAnnouncement(t, river, everyone, c.t, time.Hour, ann(strangerCard)), "carries the card of stranger"},
		{"a card that does not verify", sealAnnouncement(t, river, everyone, c.t, time.Hour, ann(strings.Replace(riverCard, "name=river", "name=rivet", 1))), "signature does not verify"},
		{"expired", sealAnnouncement(t, river, everyone, c.t.Add(-2*time.Hour), time.Hour, ann(riverCard)), "expired"},
		{"to one node", sealAnnouncement(t, river, bundle.ToNode(north.ID()), c.t, time.Hour, ann(riverCard)), "addressed to everyone"},
		{"not introduced", sealAnnouncement(t, stranger, everyone, c.t, time.Hour, ann(strangerCard)), "no trusted node has introduced"},
	}
	for _, tc := range cases {
		_, err := north.Ingest(ctx, bytes.NewReader(tc.b))
		var re *node.RefusedError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a refusal about %q", tc.name, err, tc.want)
		}
	}
	if dir, err := north.Directory(ctx); err != nil || len(dir) != 0 {
		t.Errorf("the directory holds %v (%v) after refusals", names(dir), err)
	}
	// A tampered payload byte is caught by the payload hash.
	good := sealAnnouncement(t, river, everyone, c.t, time.Hour, ann(riverCard))
	bad := bytes.Clone(good)
	bad[len(bad)-20] ^= 1
	if _, err := north.Ingest(ctx, bytes.NewReader(bad)); !errors.Is(err, bundle.ErrPayloadHash) {
		t.Errorf("tampered announcement: %v, want ErrPayloadHash", err)
	}
	// The good one goes in; an older one after it is superseded.
	if res, err := north.Ingest(ctx, bytes.NewReader(good)); err != nil || res.Status != node.StatusStored {
		t.Fatalf("good announcement: %v %v", res.Status, err)
	}
	older := sealAnnouncement(t, river, everyone, c.t, time.Hour, &bundle.Announcement{Issued: c.t.Add(-time.Minute), Card: riverCard})
	if res, err := north.Ingest(ctx, bytes.NewReader(older)); err != nil || res.Status != node.StatusSuperseded {
		t.Errorf("older announcement: %v %v, want superseded", res.Status, err)
	}
}
