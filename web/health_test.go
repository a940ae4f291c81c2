package web

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"ferry/node"
)

// TestHealth: admins see version, uptime, disk and store use, queues per
// destination and the last contact per carrier, as a page and as JSON;
// the disk alarm goes off when free space is below the threshold; anyone
// may ask /healthz, which tells ok or degraded and nothing else.
func TestHealth(t *testing.T) {
	f := newFixture(t, "north")
	f.account("ada", roleAdmin)
	f.account("bob", roleMember)
	ctx := context.Background()

	// A peer, a message to it carried once (a handoff by "file") and one
	// more waiting in a bundle.
	south, err := node.Init(filepath.Join(t.TempDir(), "south"), "south", node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer south.Close()
	card, _ := south.Card(nil, nil)
	peer, err := f.n.AddPeer(ctx, card, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.n.AddUser(ctx, "anna"); err != nil {
		t.Fatal(err)
	}
	if err := south.AddUser(ctx, "sam"); err != nil {
		t.Fatal(err)
	}
	to := node.Address{User: "sam", Node: "south"}
	if _, _, err := f.n.Post(ctx, node.Draft{From: "anna", To: to, Body: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n.Export(ctx, peer.ID, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.n.Post(ctx, node.Draft{From: "anna", To: to, Body: "two"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n.Seal(ctx); err != nil {
		t.Fatal(err)
	}

	const gib = 1 << 30
	free := int64(20 * gib)
	f.s.opts.Health = HealthOptions{Version: "ferry v1.2.3 (test)", Started: f.clock.now(),
		Status: node.StatusOptions{AlarmPercent: 10, AlarmBytes: gib,
			Statfs: func(string) (int64, int64, error) { return 32 * gib, free, nil }}}
	f.clock.advance(3*3600e9 + 5*60e9)

	anon, bob, ada := f.client("10.0.0.9"), f.member("bob", "10.0.0.2"), f.member("ada", "10.0.0.1")
	healthz := func(c *client) (int, map[string]any) {
		resp, body := c.get("/healthz")
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("/healthz: %v\n%s", err, body)
		}
		return resp.StatusCode, m
	}
	for _, c := range []*client{anon, bob} {
		if code, m := healthz(c); code != http.StatusOK || len(m) != 1 || m["status"] != "ok" {
			t.Errorf("/healthz = %d %v, want 200 and only status ok", code, m)
		}
		if resp, body := c.get("/admin/health.json"); resp.StatusCode == http.StatusOK || strings.Contains(body, "fs_free") {
			t.Errorf("/admin/health.json for a non-admin: %d", resp.StatusCode)
		}
	}

	resp, body := ada.get("/admin/health")
	wantStatus(t, "health page", resp, body, http.StatusOK)
	for _, want := range []string{"ferry v1.2.3 (test)", "3 h 5 min", "All is well", "20.0 GB free of 32.0 GB", "south", "file", "bundles handed over"} {
		if !strings.Contains(body, want) {
			t.Errorf("health page lacks %q", want)
		}
	}
	if strings.Contains(body, "nearly full") {
		t.Error("alarm on the health page with 20 GiB free")
	}
	var h Health
	resp, body = ada.get("/admin/health.json")
	wantStatus(t, "health.json", resp, body, http.StatusOK)
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Version != "ferry v1.2.3 (test)" || h.Uptime != "3 h 5 min" || h.Disk.FSFree != 20*gib || h.Disk.Database <= 0 || h.Disk.Alarm != "" {
		t.Errorf("health = %+v, disk %+v", h, h.Disk)
	}
	if q := h.Queue; q.Bundles != 2 || len(q.ByDestination) != 1 || q.ByDestination[0].Dest != "south" || q.ByDestination[0].Bytes <= 0 {
		t.Errorf("queue = %+v", q)
	}
	if len(h.Contacts) != 1 || h.Contacts[0].Carrier != "file" || h.Contacts[0].Last.IsZero() {
		t.Errorf("contacts = %+v", h.Contacts)
	}

	// Below the threshold: 9 % of the card free, or less than 1 GiB.
	for _, low := range []int64{32 * gib * 9 / 100, gib - 1} {
		free = low
		if code, m := healthz(anon); code != http.StatusServiceUnavailable || len(m) != 1 || m["status"] != "degraded" {
			t.Errorf("/healthz with %d free = %d %v, want 503 degraded", low, code, m)
		}
		_, body = ada.get("/admin/health")
		if !strings.Contains(body, "The disk is nearly full") {
			t.Errorf("no alarm on the health page with %d bytes free", low)
		}
		_, body = ada.get("/admin/health.json")
		if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "degraded" || h.Disk.Alarm == "" {
			t.Errorf("health.json with %d free: %v %+v", low, err, h.Disk)
		}
	}
	free = 10 * gib
	if code, _ := healthz(anon); code != http.StatusOK {
		t.Errorf("/healthz after space was freed: %d", code)
	}
}
