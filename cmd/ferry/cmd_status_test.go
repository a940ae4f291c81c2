package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"ferry/node"
)

func TestStatus(t *testing.T) {
	root := t.TempDir()
	river, hill := newCommunity(t, root, "river", "anna"), newCommunity(t, root, "hill", "ben")
	introduce(t, river, hill)
	for _, body := range []string{"one", "two"} {
		mustFerry(t, "send", "--data", river.data, "--from", "anna", "--to", "ben@hill", body)
	}
	mustFerry(t, "export", "--data", river.data, "--to", "hill", "--out", filepath.Join(root, "stick"))
	mustFerry(t, "send", "--data", river.data, "--from", "anna", "--to", "ben@hill", "three")

	var st statusReport
	if err := json.Unmarshal([]byte(mustFerry(t, "status", "--data", river.data, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Node != "river" || len(st.ID) != 64 || st.Build.Version == "" {
		t.Errorf("status node = %q %q, build %+v", st.Node, st.ID, st.Build)
	}
	d := st.Disk
	if d.Database <= 0 || d.Spool <= 0 || d.Total < d.Database+d.Spool || d.FSSize <= 0 || d.FSFree <= 0 || d.FSFree > d.FSSize {
		t.Errorf("disk = %+v", d)
	}
	q := st.Queue
	if q.MessagesQueued != 1 || q.Bundles != 1 || len(q.ByDestination) != 1 || q.ByDestination[0].Dest != "hill" || q.ByDestination[0].Bytes != q.BundleBytes {
		t.Errorf("queue = %+v", q)
	}
	if len(st.Peers) != 1 || st.Peers[0].Name != "hill" || st.Peers[0].Carrier != "file" || st.Peers[0].LastOut == nil || st.Peers[0].LastIn != nil || st.Peers[0].Waiting != 1 {
		t.Errorf("peers = %+v", st.Peers)
	}

	out := mustFerry(t, "status", "--data", river.data)
	for _, want := range []string{"node     river (", "free of", "1 messages waiting", "1 bundles", "for hill", "LAST SENT"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if r := ferry(t, "status", "--data", filepath.Join(root, "none")); r.code != 1 || !strings.Contains(r.stderr, "ferry init") {
		t.Errorf("status of no node: exit %d, %s", r.code, r.stderr)
	}
}

func TestStatusDiskAlarm(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		free, size int64
		alarm      bool
	}{
		{free: 20 * gib, size: 32 * gib},
		{free: 3 * gib, size: 32 * gib},  // 9.4 %
		{free: 900 << 20, size: 8 * gib}, // under 1 GiB
		{free: 2 * gib, size: 8 * gib},
		{free: 0, size: 8 * gib},
		{free: 0, size: 0},
	} {
		c.alarm = c.size > 0 && (c.free*10 < c.size || c.free < gib)
		got := node.DiskAlarm(c.free, c.size, node.DefaultAlarmPercent, node.DefaultAlarmBytes)
		if (got != "") != c.alarm {
			t.Errorf("diskAlarm(%d, %d) = %q, want alarm %v", c.free, c.size, got, c.alarm)
		}
	}
	if got := node.DiskAlarm(3*gib, 32*gib, node.DefaultAlarmPercent, node.DefaultAlarmBytes); !strings.Contains(got, "3.0 GiB (9.4 %) free") {
		t.Errorf("alarm text = %q", got)
	}
}
