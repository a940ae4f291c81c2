package node_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ferry/archive"
	"ferry/node"
)

// TestBackupKeepsArchive backs up a node while it adds archive items
// (new chunks and manifests) and sends messages, restores the backup into
// a fresh directory, and reads back every archive item the restored node
// lists: each must come out whole and equal to the tree it was made of.
func TestBackupKeepsArchive(t *testing.T) {
	ctx := t.Context()
	a, _, to := riverAndHill(t, &clock{t: time.Now()})
	trees := t.TempDir()
	// makeTree writes a small site: text pages and a random "photo", so
	// that items share some chunks and not others.
	makeTree := func(i int) string {
		dir := filepath.Join(trees, fmt.Sprint(i))
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for p := range 4 {
			page := bytes.Repeat(fmt.Appendf(nil, "<p>page %d of site %d</p>\n", p, i%3), 2000)
			os.MkdirAll(filepath.Join(dir, "pages"), 0o755)
			os.WriteFile(filepath.Join(dir, "pages", fmt.Sprintf("%d.html", p)), page, 0o644)
		}
		photo := make([]byte, 100_000+rng.IntN(200_000))
		for j := range photo {
			photo[j] = byte(rng.Uint32())
		}
		os.WriteFile(filepath.Join(dir, "photo.jpg"), photo, 0o644)
		return dir
	}
	var mu sync.Mutex
	source := map[string]string{} // item ID and version → tree
	add := func(i int) {
		tree := makeTree(i)
		rep, err := archive.Add(ctx, a, tree, nil, archive.Meta{Title: fmt.Sprintf("site %d", i)})
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		source[fmt.Sprintf("%x/%d", rep.Manifest.Item, rep.Manifest.Version)] = tree
		mu.Unlock()
	}
	for i := range 3 {
		add(i)
		if _, err := a.Send(ctx, "user", to, fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 3; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			add(i)
			a.Send(ctx, "user", to, fmt.Sprintf("message %d", i))
		}
	})
	dir := filepath.Join(t.TempDir(), "backup")
	_, err := a.Backup(ctx, dir)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
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
	if r.ID() != a.ID() {
		t.Fatalf("restored node is %s, want %s", r.ID().Short(), a.ID().Short())
	}
	items, err := archive.List(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) < 3 {
		t.Fatalf("restored archive lists %d items, the node had 3 before the backup began", len(items))
	}
	for _, it := range items {
		if !it.Complete {
			t.Errorf("item %s (%s) is incomplete after the restore", it.ID, it.Title)
			continue
		}
		id, err := archive.ResolveItem(ctx, r, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		m, err := archive.Get(ctx, r, id, out)
		if err != nil {
			t.Errorf("get %s (%s): %v", it.ID, it.Title, err)
			continue
		}
		tree := source[fmt.Sprintf("%x/%d", m.Item, m.Version)]
		if tree == "" {
			t.Errorf("item %s version %d was never added", it.ID, m.Version)
			continue
		}
		for _, f := range []string{"photo.jpg", "pages/0.html", "pages/3.html"} {
			want, _ := os.ReadFile(filepath.Join(tree, f))
			got, err := os.ReadFile(filepath.Join(out, f))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %s differs from the tree it was made of (%v)", it.Title, f, err)
			}
		}
	}
	t.Logf("%d archive items added, %d in the restored node", len(source), len(items))
}
