package node_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"ferry/carriers"
	"ferry/node"
)

// TestRestoreOldBackupNumbersAfresh: a node sends 10 bundles after a
// backup, is restored from that backup (losing them) and sends 10 more.
// The peer, which saw the first 10, takes in every new bundle and every
// new message: no sequence number of a bundle or a message is reused.
func TestRestoreOldBackupNumbersAfresh(t *testing.T) {
	ctx := t.Context()
	c := &clock{t: time.Now()}
	river, hill, to := riverAndHill(t, c)
	// sendOne sends one message in a bundle of its own and carries it to
	// hill, returning the bundle's sequence number.
	sendOne := func(from *node.Node, body string) uint64 {
		t.Helper()
		if _, err := from.Send(ctx, "user", to, body); err != nil {
			t.Fatal(err)
		}
		var seq uint64
		for _, r := range carry(t, from, hill) {
			if r.Status == node.StatusDuplicate {
				continue // carried before
			}
			if r.Status != node.StatusApplied || r.Messages != 1 {
				t.Fatalf("%q: hill took in %+v, want one new message applied", body, r)
			}
			seq = r.Header.Seq
		}
		if seq == 0 {
			t.Fatalf("%q: no new bundle reached hill", body)
		}
		return seq
	}
	seen := map[uint64]string{}
	for i := range 3 {
		seen[sendOne(river, fmt.Sprintf("before %d", i))] = "before"
	}
	backup := filepath.Join(t.TempDir(), "backup")
	if _, err := river.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		seen[sendOne(river, fmt.Sprintf("lost %d", i))] = "lost"
	}
	river.Close()

	dir := filepath.Join(t.TempDir(), "restored")
	m, err := node.Restore(backup, dir)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := node.Open(dir, node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	for i := range 10 {
		seq := sendOne(restored, fmt.Sprintf("after %d", i))
		if prev, ok := seen[seq]; ok {
			t.Fatalf("bundle %d after the restore reuses the sequence number of a %s bundle", seq, prev)
		}
		if seq < m.SeqFloor {
			t.Errorf("bundle %d is below the floor %d", seq, m.SeqFloor)
		}
		seen[seq] = "after"
	}
	got := state(t, hill, "user")
	for _, b := range []string{"before 0", "lost 9", "after 0", "after 9"} {
		if _, ok := got[b]; !ok {
			t.Errorf("hill lacks %q", b)
		}
	}
	if len(got) != 23 {
		t.Errorf("hill has %d messages from river, want 23", len(got))
	}
	// Restoring the same backup again moves the numbers on again.
	dir2 := filepath.Join(t.TempDir(), "again")
	m2, err := node.Restore(backup, dir2)
	if err != nil {
		t.Fatal(err)
	}
	if m2.SeqFloor < m.SeqFloor {
		t.Errorf("second restore's floor %d, first %d", m2.SeqFloor, m.SeqFloor)
	}
}

// riverAndHill makes two linked nodes, each with a user "user", and
// returns them with the address of hill's user.
func riverAndHill(t *testing.T, c *clock) (river, hill *node.Node, to node.Address) {
	t.Helper()
	river, hill = newNode(t, "river", c), newNode(t, "hill", c)
	link(t, river, hill)
	to, err := node.ParseAddress("user@hill")
	if err != nil {
		t.Fatal(err)
	}
	return river, hill, to
}

// TestSyncAfterRestoreFromOldBackup: the same over a live link. The gap
// the sequence floor leaves in the restored node's numbers travels as a
// range in reconciliation; the peer asks for and takes in every new
// bundle, and the two end in sync.
func TestSyncAfterRestoreFromOldBackup(t *testing.T) {
	ctx := t.Context()
	c := &clock{t: time.Now()}
	river, hill, to := riverAndHill(t, c)
	sync := func(a, b *node.Node) *carriers.Report {
		t.Helper()
		pa, pb := carriers.Pipe(64 << 10)
		done := make(chan error, 1)
		go func() {
			_, err := carriers.Sync(ctx, b, pb, carriers.Options{})
			done <- err
		}()
		rep, err := carriers.Sync(ctx, a, pa, carriers.Options{})
		if err2 := <-done; err == nil {
			err = err2
		}
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	send := func(n *node.Node, what string, k int) {
		t.Helper()
		for i := range k {
			if _, err := n.Send(ctx, "user", to, fmt.Sprintf("%s %d", what, i)); err != nil {
				t.Fatal(err)
			}
			sync(n, hill) // one bundle per session
		}
	}
	send(river, "before", 3)
	backup := filepath.Join(t.TempDir(), "backup")
	if _, err := river.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	send(river, "lost", 5)
	river.Close()
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := node.Restore(backup, dir); err != nil {
		t.Fatal(err)
	}
	restored, err := node.Open(dir, node.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	send(restored, "after", 5)
	got := state(t, hill, "user")
	for i := range 5 {
		if _, ok := got[fmt.Sprintf("after %d", i)]; !ok {
			t.Errorf("hill lacks \"after %d\"", i)
		}
	}
	if len(got) != 13 {
		t.Errorf("hill has %d messages from river, want 13", len(got))
	}
	if rep := sync(restored, hill); !rep.InSync {
		t.Errorf("restored river and hill not in sync after a last session: %+v", rep)
	}
}
