package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackupUnderLoad backs a node up while other processes send
// messages to it and export bundles from it, restores the backup into a
// fresh directory, and checks that the restored node has every message
// the node held when the backup began, its peers and users, the bundles it
// holds for carrying, and the same identity.
func TestBackupUnderLoad(t *testing.T) {
	root := t.TempDir()
	river, hill := newCommunity(t, root, "river", "anna"), newCommunity(t, root, "hill", "ben")
	introduce(t, river, hill)
	mustFerry(t, "user", "add", "--data", river.data, "carl")
	for i := range 20 {
		mustFerry(t, "send", "--data", river.data, "--from", "anna", "--to", "ben@hill", fmt.Sprintf("before %d", i))
	}
	mustFerry(t, "export", "--data", river.data, "--to", "hill", "--out", filepath.Join(root, "stick"))
	before := inboxJSON(t, river.data, "anna")

	// The load: a loop of sends and exports in other processes.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	loaded := make(chan struct{}) // the first send of the load is in
	go func() {
		i := 0
		for ctx.Err() == nil {
			exec.CommandContext(ctx, ferryBin, "send", "--data", river.data, "--from", "carl", "--to", "ben@hill", fmt.Sprintf("during %d", i)).Run()
			if i == 0 {
				close(loaded)
			}
			if i%5 == 4 {
				exec.CommandContext(ctx, ferryBin, "export", "--data", river.data, "--to", "hill", "--out", filepath.Join(root, "stick")).Run()
			}
			i++
		}
		done <- i
	}()
	// However slow the machine, the backup starts with the load running.
	select {
	case <-loaded:
	case <-time.After(time.Minute): // only bounds a hang
		t.Fatal("the load's first send did not end within a minute")
	}
	backup := filepath.Join(root, "usb", "ferry-backup")
	out := mustFerry(t, "backup", "--data", river.data, "--out", backup)
	time.Sleep(200 * time.Millisecond)
	cancel()
	t.Logf("%s(%d sends ran alongside)", out, <-done)

	if r := ferry(t, "backup", "--data", river.data, "--out", backup); r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("backup into a used folder: exit %d, %s", r.code, r.stderr)
	}
	if r := ferry(t, "restore", "--from", backup, "--data", hill.data); r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("restore over a node: exit %d, %s", r.code, r.stderr)
	}

	restored := filepath.Join(root, "restored")
	mustFerry(t, "restore", "--from", backup, "--data", restored)
	after := inboxJSON(t, restored, "anna")
	if len(after) != len(before) {
		t.Errorf("restored inbox has %d messages, want %d", len(after), len(before))
	}
	for i := range min(len(after), len(before)) {
		if after[i]["id"] != before[i]["id"] || after[i]["body"] != before[i]["body"] {
			t.Errorf("restored message %d = %v, want %v", i, after[i], before[i])
		}
	}
	if during := inboxJSON(t, restored, "carl"); len(during) == 0 {
		t.Log("no message of the load made it into the snapshot")
	}
	cardOf := func(data string) string {
		card := mustFerry(t, "card", "--data", data)
		id, _, _ := strings.Cut(card[strings.Index(card, " id="):], " sig=")
		return strings.Fields(id)[0]
	}
	if got, want := cardOf(restored), cardOf(river.data); got != want {
		t.Errorf("restored card %s, want %s", got, want)
	}
	for _, f := range []string{"node.key", "identity.txt"} {
		a, _ := os.ReadFile(filepath.Join(river.data, f))
		b, _ := os.ReadFile(filepath.Join(restored, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("restored %s differs", f)
		}
	}
	if got, want := mustFerry(t, "peer", "list", "--data", restored), mustFerry(t, "peer", "list", "--data", river.data); got != want {
		t.Errorf("restored peers:\n%s\nwant:\n%s", got, want)
	}
	if got := mustFerry(t, "user", "list", "--data", restored); !strings.Contains(got, "anna") || !strings.Contains(got, "carl") {
		t.Errorf("restored users: %s", got)
	}
	// The restored node still works: hill takes in what it exported.
	mustFerry(t, "send", "--data", restored, "--from", "anna", "--to", "ben@hill", "after the restore")
	mustFerry(t, "export", "--data", restored, "--to", "hill", "--out", filepath.Join(root, "stick2"))
	mustFerry(t, "import", "--data", hill.data, filepath.Join(root, "stick2"))
	if got := inboxJSON(t, hill.data, "ben"); !strings.Contains(fmt.Sprint(got), "after the restore") {
		t.Errorf("hill did not receive the restored node's message: %v", got)
	}
}

func TestRestoreDamaged(t *testing.T) {
	root := t.TempDir()
	river := newCommunity(t, root, "river", "anna")
	backup := filepath.Join(root, "backup")
	mustFerry(t, "backup", "--data", river.data, "--out", backup)
	db := filepath.Join(backup, "ferry.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	os.WriteFile(db, data, 0o600)
	r := ferry(t, "restore", "--from", backup, "--data", filepath.Join(root, "new"))
	if r.code != 1 || !strings.Contains(r.stderr, "bad backup: ferry.db") {
		t.Errorf("restore of a damaged backup: exit %d, %s", r.code, r.stderr)
	}
}

func inboxJSON(t *testing.T, data, user string) []map[string]any {
	t.Helper()
	var ms []map[string]any
	if err := json.Unmarshal([]byte(mustFerry(t, "inbox", "--data", data, "--user", user, "--json")), &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}
