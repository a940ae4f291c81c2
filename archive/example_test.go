package archive_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"ferry/archive"
	"ferry/node"
)

func Example_archive() {
	ctx := context.Background()
	tmp, _ := os.MkdirTemp("", "ferry-archive-example-")
	defer os.RemoveAll(tmp)
	n, err := node.Init(filepath.Join(tmp, "data"), "north", node.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()

	site := filepath.Join(tmp, "site")
	os.MkdirAll(filepath.Join(site, "docs"), 0o755)
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<a href=docs/water.html>water</a>"), 0o644)
	os.WriteFile(filepath.Join(site, "docs", "water.html"), []byte("Boil water for one minute."), 0o644)

	rep, err := archive.Add(ctx, n, site, nil, archive.Meta{Title: "Health notes", Tags: []string{"health"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := archive.Get(ctx, n, rep.Manifest.Item, filepath.Join(tmp, "out"))
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(filepath.Join(tmp, "out", "docs", "water.html"))
	fmt.Printf("%s: %d files, %d bytes\n%s\n", m.Title, len(m.Files), m.Size(), b)
	// Output:
	// Health notes: 2 files, 59 bytes
	// Boil water for one minute.
}
