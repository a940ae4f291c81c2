package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeSyncsAMountedStick: a stick mounted while 'ferry serve' runs is
// noticed through /proc/self/mountinfo and synced, with no command run.
func TestServeSyncsAMountedStick(t *testing.T) {
	root := t.TempDir()
	north := newCommunity(t, root, "north", "alice")
	river := newCommunity(t, root, "river", "bob")
	introduce(t, north, river)
	mustFerry(t, "send", "--data", north.data, "--from", "alice", "--to", "bob@river", "found on a stick")

	media := filepath.Join(root, "media")
	stick := filepath.Join(media, "STICK")
	if err := os.MkdirAll(stick, 0o755); err != nil {
		t.Fatal(err)
	}
	s := serve(t, river, "--sync-listen", "127.0.0.1:0", "--discover=false", "--usb-watch", media)

	// A real mount, so that the kernel's mount table lists it (CI runs as root).
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", stick).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", stick).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", stick).Run()
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	mustFerry(t, "usb", "sync", "--data", north.data, stick)

	deadline := time.Now().Add(30 * time.Second)
	for {
		if strings.Contains(mustFerry(t, "inbox", "--data", river.data, "--user", "bob"), "found on a stick") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("river's serve did not take in the stick:\n%s", s.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The serve left its inventory and a receipt for north on the stick.
	for !strings.Contains(s.log(), "stick synced") {
		if time.Now().After(deadline) {
			t.Fatalf("no sync report in the log:\n%s", s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustFerry(t, "usb", "sync", "--data", north.data, stick)
	if got := stateOf(t, north, "alice", "found on a stick"); got != "delivered" {
		t.Fatalf("alice sees %q, want delivered", got)
	}
}
