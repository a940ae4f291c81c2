package usb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Label is the file system label that marks an empty stick as ferry's.
const Label = "FERRY"

// Watcher notices sticks as they are mounted, by reading the kernel's
// table of mounts (/proc/self/mountinfo) every Interval. A stick counts if
// it is mounted under one of Prefixes and holds a FERRY folder, or is
// empty and labelled FERRY.
type Watcher struct {
	// Mountinfo is the mount table to read; empty means /proc/self/mountinfo.
	Mountinfo string
	// Prefixes are where removable file systems get mounted; empty means
	// /media, /run/media and /mnt.
	Prefixes []string
	// Interval between two reads; zero means two seconds.
	Interval time.Duration
	// ByLabel is the folder of label links; empty means /dev/disk/by-label.
	ByLabel string
}

// Mount is one mounted file system.
type Mount struct {
	ID     int
	Point  string
	FSType string
	Source string
}

// Run calls found for every stick mounted while it runs (and those mounted
// when it starts), once per mount, until ctx is done. found runs on Run's
// goroutine: a sync in progress delays noticing the next stick, which is
// what a node with one USB port wants.
func (w *Watcher) Run(ctx context.Context, found func(ctx context.Context, m Mount)) error {
	interval := w.Interval
	if interval == 0 {
		interval = 2 * time.Second
	}
	seen := map[int]bool{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		mounts, err := w.Sticks()
		if err != nil {
			return err
		}
		now := map[int]bool{}
		for _, m := range mounts {
			now[m.ID] = true
			if !seen[m.ID] {
				found(ctx, m)
			}
		}
		seen = now
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sticks returns the mounted file systems that count as ferry sticks now.
func (w *Watcher) Sticks() ([]Mount, error) {
	path := w.Mountinfo
	if path == "" {
		path = "/proc/self/mountinfo"
	}
	mounts, err := readMountinfo(path)
	if err != nil {
		return nil, err
	}
	prefixes := w.Prefixes
	if len(prefixes) == 0 {
		prefixes = []string{"/media", "/run/media", "/mnt"}
	}
	var out []Mount
	for _, m := range mounts {
		if !underAny(m.Point, prefixes) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(m.Point, Dir)); err == nil && fi.IsDir() {
			out = append(out, m)
			continue
		}
		if w.labelled(m) && isEmpty(m.Point) {
			out = append(out, m)
		}
	}
	return out, nil
}

// labelled reports whether the mount's device carries the FERRY label, or
// was mounted under that name (desktop automounters use the label).
func (w *Watcher) labelled(m Mount) bool {
	if filepath.Base(m.Point) == Label {
		return true
	}
	dir := w.ByLabel
	if dir == "" {
		dir = "/dev/disk/by-label"
	}
	target, err := filepath.EvalSymlinks(filepath.Join(dir, Label))
	if err != nil {
		return false
	}
	src, err := filepath.EvalSymlinks(m.Source)
	return err == nil && src == target
}

func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		pre = strings.TrimSuffix(pre, "/")
		if p != pre && strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

func isEmpty(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		// What file systems and desktops put on a fresh stick.
		switch e.Name() {
		case "lost+found", "System Volume Information", ".Trash-1000", ".fseventsd", ".Spotlight-V100":
			continue
		}
		return false
	}
	return true
}

// readMountinfo parses a mountinfo table (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func readMountinfo(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("usb: %w", err)
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseMountinfoLine(sc.Text())
		if ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("usb: read %s: %w", path, err)
	}
	return out, nil
}

func parseMountinfoLine(line string) (Mount, bool) {
	f := strings.Fields(line)
	sep := -1
	for i, s := range f {
		if s == "-" && i >= 6 {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 || sep+2 >= len(f) {
		return Mount{}, false
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		return Mount{}, false
	}
	return Mount{ID: id, Point: unescapeMount(f[4]), FSType: f[sep+1], Source: unescapeMount(f[sep+2])}, true
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
