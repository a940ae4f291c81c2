package usb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcherFindsSticks(t *testing.T) {
	root := t.TempDir()
	media := filepath.Join(root, "media")
	withFerry := filepath.Join(media, "pi", "STICK A") // a space, escaped in mountinfo
	empty := filepath.Join(media, "pi", "FERRY")       // empty, labelled by its name
	other := filepath.Join(media, "pi", "PHOTOS")      // someone's photos: not ours
	outside := filepath.Join(root, "srv", "data")      // has FERRY/ but is not removable
	for _, d := range []string{filepath.Join(withFerry, Dir), empty, filepath.Join(other, "DCIM"), filepath.Join(outside, Dir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	esc := func(p string) string { return strings.ReplaceAll(p, " ", `\040`) }
	table := strings.Join([]string{
		"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
		"40 22 8:17 / " + esc(withFerry) + " rw,nosuid shared:30 - vfat /dev/sdb1 rw,fmask=0022",
		"41 22 8:33 / " + esc(empty) + " rw,nosuid shared:31 - exfat /dev/sdc1 rw",
		"42 22 8:49 / " + esc(other) + " rw,nosuid shared:32 - vfat /dev/sdd1 rw",
		"43 22 8:65 / " + esc(outside) + " rw shared:33 - ext4 /dev/sde1 rw",
		"garbage line",
	}, "\n") + "\n"
	info := filepath.Join(root, "mountinfo")
	if err := os.WriteFile(info, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &Watcher{Mountinfo: info, Prefixes: []string{media}, ByLabel: filepath.Join(root, "by-label"), Interval: 10 * time.Millisecond}
	sticks, err := w.Sticks()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range sticks {
		got = append(got, m.Point)
	}
	if len(got) != 2 || got[0] != withFerry || got[1] != empty {
		t.Fatalf("sticks = %q, want %q and %q", got, withFerry, empty)
	}

	// Run reports each mount once, while it stays mounted.
	ctx, cancel := context.WithCancel(t.Context())
	calls := map[string]int{}
	done := make(chan error)
	go func() {
		done <- w.Run(ctx, func(_ context.Context, m Mount) {
			calls[m.Point]++
			if calls[withFerry] == 1 && calls[empty] == 1 && len(calls) == 2 {
				cancel()
			}
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // only bounds a hang
		t.Fatal("watcher did not report both sticks")
	}
	if calls[withFerry] != 1 || calls[empty] != 1 {
		t.Fatalf("calls = %v", calls)
	}
}
