package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/node"
)

// TestBackupWhileWriting backs a node up while another goroutine sends
// messages and stores files, restores the backup into a fresh directory
// and checks that the restored node has everything the backup began
// with, with the same identity.
func TestBackupWhileWriting(t *testing.T) {
	ctx := t.Context()
	a, b, to := riverAndHill(t, &clock{t: time.Now()})
	send := func(i int) {
		if _, err := a.Send(ctx, "user", to, fmt.Sprintf("message %d", i)); err != nil {
			t.Error(err)
		}
	}
	var hashes []string
	addFile := func(i int) {
		body := strings.Repeat(fmt.Sprintf("file %d ", i), 1000+i)
		blob, err := a.StageBlob(strings.NewReader(body), 0)
		if err != nil {
			t.Error(err)
			return
		}
		f, err := a.AddFile(ctx, "", 0, node.NewFile{Name: fmt.Sprintf("f%d.txt", i), Type: "text/plain", Blob: blob}, "user", 0)
		if err != nil {
			t.Error(err)
			return
		}
		hashes = append(hashes, f.Hash)
	}
	for i := range 50 {
		send(i)
		addFile(i)
	}
	// Seal some into bundles held in the spool for hill.
	if _, err := a.Export(ctx, b.ID(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	before, err := a.Inbox(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	filesBefore := len(hashes)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 50; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			send(i)
			if i%10 == 0 {
				a.Export(ctx, b.ID(), t.TempDir())
			}
		}
	})
	dir := filepath.Join(t.TempDir(), "backup")
	m, err := a.Backup(ctx, dir)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Missing) > 0 {
		t.Errorf("missing bodies: %v", m.Missing)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := node.Restore(dir, restored); err != nil {
		t.Fatal(err)
	}
	r, err := node.Open(restored, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.ID() != a.ID() || r.Name() != a.Name() || r.Identity().Age.Recipient().String() != a.Identity().Age.Recipient().String() {
		t.Errorf("restored node is %s %s, want %s %s", r.Name(), r.ID().Short(), a.Name(), a.ID().Short())
	}
	after, err := r.Inbox(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) < len(before) {
		t.Fatalf("restored inbox has %d messages, the node had %d before the backup", len(after), len(before))
	}
	for i, msg := range before {
		if after[i].ID != msg.ID || after[i].Body != msg.Body {
			t.Fatalf("restored message %d = %+v, want %+v", i, after[i], msg)
		}
	}
	t.Logf("%d messages before the backup, %d in it; %d files, %d bytes", len(before), len(after), len(m.Files), m.Bytes())
	peers, err := r.Peers(ctx)
	if err != nil || len(peers) != 1 || peers[0].Name != "hill" {
		t.Errorf("restored peers = %+v, %v", peers, err)
	}
	_, files, err := r.ListFolder(ctx, "", 0)
	if err != nil || len(files) != filesBefore {
		t.Fatalf("restored shared files: %d, %v; want %d", len(files), err, filesBefore)
	}
	for _, f := range files {
		checkBlob(t, r, f.Hash)
	}
	// Every bundle held for hill is still there to carry.
	held, err := r.Held(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range held {
		fh, err := r.OpenBundle(h.ID)
		if err != nil {
			t.Errorf("restored spool lacks bundle %s: %v", h.ID, err)
			continue
		}
		fh.Close()
	}
	if len(held) == 0 {
		t.Error("no bundles held in the restored spool")
	}
}

func checkBlob(t *testing.T, n *node.Node, hash string) {
	t.Helper()
	f, err := n.OpenBlob(hash)
	if err != nil {
		t.Errorf("blob %s: %v", hash, err)
		return
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		t.Errorf("blob %s hashes to %s", hash, got)
	}
}

func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	a := newNode(t, "river", &clock{t: time.Now()})
	blob, err := a.StageBlob(strings.NewReader("a file body"), 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.AddFile(ctx, "", 0, node.NewFile{Name: "a.txt", Type: "text/plain", Blob: blob}, "user", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backup")
	if _, err := a.Backup(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Backup(ctx, dir); !errors.Is(err, node.ErrNotEmpty) {
		t.Errorf("backup into a full folder: %v, want ErrNotEmpty", err)
	}

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o600)
	if _, err := node.Restore(dir, full); !errors.Is(err, node.ErrNotEmpty) {
		t.Errorf("restore into a non-empty folder: %v, want ErrNotEmpty", err)
	}
	if _, err := node.Restore(t.TempDir(), filepath.Join(t.TempDir(), "n")); !errors.Is(err, node.ErrBadBackup) {
		t.Errorf("restore from a folder without manifest: %v, want ErrBadBackup", err)
	}

	// A damaged file body is caught, and nothing is left behind.
	blobPath := filepath.Join(dir, "files", f.Hash[:2], f.Hash)
	if err := os.WriteFile(blobPath, []byte("A file body"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "n")
	_, err = node.Restore(dir, target)
	if !errors.Is(err, node.ErrBadBackup) || !strings.Contains(err.Error(), f.Hash) {
		t.Errorf("restore of a damaged backup: %v, want ErrBadBackup naming the file", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("a failed restore left %d entries in the target", len(entries))
	}
}

func TestBackedUp(t *testing.T) {
	for _, c := range []struct {
		rel           string
		before, after bool
	}{
		{"node.key", true, true},
		{"identity.txt", true, true},
		{"ferry.db", false, false},
		{"ferry.db-wal", false, false},
		{"ferry.db-shm", false, false},
		{"spool/ab/ab12.bundle", true, true},
		{"spool/tmp/ab12.partial", false, true},
		{"spool/tmp/0123.part", false, false},
		{"files/ab/" + strings.Repeat("ab", 32), true, true},
		{"files/tmp/upload-123", false, false},
		{"archive/chunks/ab/cd", true, true},
		{"archive/chunks/packs/00000001.pack", false, true},
		{"archive/chunks/.index.db", false, false},
		{"archive/chunks/tmp/00000002.pack", false, false},
		{"archive/tmp/x", false, false},
		{".hidden", false, false},
		{"x/.ferry-1.part", false, false},
	} {
		if got := node.BackedUpForTest(c.rel, false); got != c.before {
			t.Errorf("backedUp(%q, before the snapshot) = %v", c.rel, got)
		}
		if got := node.BackedUpForTest(c.rel, true); got != c.after {
			t.Errorf("backedUp(%q, after the snapshot) = %v", c.rel, got)
		}
	}
}
