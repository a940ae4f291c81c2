package transfer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// tree makes folders and files below a folder of the received area by
// directory descriptors: one openat per name, never following a link, so
// that a path from a bundle cannot leave the tree (the names come from
// paths bundle.ParseFileHeader checked: relative, no "." or "..") and
// 8,000 small files cost 8,000 opens, not one per path element each.
type tree struct {
	top  *os.File // the received folder
	base string   // the tree's folder in it, slash-separated
	dirs map[string]*os.File
}

// maxOpenDirs bounds the folders a tree keeps open.
const maxOpenDirs = 64

func newTree(top *os.File, base string) (*tree, error) {
	t := &tree{top: top, base: base, dirs: map[string]*os.File{}} // base is never ""
	if _, err := t.dir(""); err != nil {
		return nil, err
	}
	return t, nil
}

// dir returns the folder rel of the tree, made if missing.
func (t *tree) dir(rel string) (*os.File, error) {
	if d, ok := t.dirs[rel]; ok {
		return d, nil
	}
	if rel != "" {
		parent, err := t.dir(parentOf(rel))
		if err != nil {
			return nil, err
		}
		d, err := step(parent, path.Base(rel), rel, true)
		if err != nil {
			return nil, err
		}
		t.dirs[rel] = d
		return d, nil
	}
	cur := t.top
	for _, name := range strings.Split(t.base, "/") {
		d, err := step(cur, name, t.base, false)
		if cur != t.top {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur = d
	}
	t.dirs[""] = cur
	return cur, nil
}

// step makes and opens the folder name in parent. A name from a bundle
// (fromBundle) that cannot be a folder refuses the bundle; the folders
// above a transfer's are this node's own, and trouble there is a store
// error (say, the admin left a file or a link where ferry files a
// sender's transfers).
func step(parent *os.File, name, show string, fromBundle bool) (*os.File, error) {
	err := unix.Mkdirat(int(parent.Fd()), name, 0o755)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		if fromBundle && badName(err) {
			return nil, refuse("%s cannot be a folder name here: %v", show, err)
		}
		return nil, fmt.Errorf("transfer: make folder %s: %w", show, err)
	}
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if fromBundle && (errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)) {
		return nil, refuse("%s is a file of the transfer and a folder too", show)
	}
	if err != nil {
		return nil, fmt.Errorf("transfer: open folder %s: %w (ferry files transfers only into plain folders)", show, err)
	}
	return os.NewFile(uintptr(fd), show), nil
}

// badName reports whether err says a name cannot exist on this file
// system: too long, or holding a byte it refuses.
func badName(err error) bool {
	return errors.Is(err, unix.ENAMETOOLONG) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EILSEQ)
}

// room closes the open folders when there are many, before an operation
// that opens at most one path's worth more.
func (t *tree) room() {
	if len(t.dirs) >= maxOpenDirs {
		t.closeDirs()
	}
}

func parentOf(rel string) string {
	if p := path.Dir(rel); p != "." {
		return p
	}
	return ""
}

// create makes the new file rel, refusing one that exists.
func (t *tree) create(rel string) (*os.File, error) {
	t.room()
	d, err := t.dir(parentOf(rel))
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(int(d.Fd()), path.Base(rel), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.EEXIST) {
		return nil, refuse("%s arrives twice, or clashes with a folder of the transfer", rel)
	}
	if badName(err) {
		return nil, refuse("%s cannot be a file name here: %v", rel, err)
	}
	if err != nil {
		return nil, fmt.Errorf("transfer: create %s: %w", rel, err)
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// canTake checks, before anything moves, that the file rel of a part can
// go to its place in t: its folders can be folders there (made if
// missing) and it is not a folder itself.
func (t *tree) canTake(rel string) error {
	t.room()
	d, err := t.dir(parentOf(rel))
	if err != nil {
		return err
	}
	var st unix.Stat_t
	err = unix.Fstatat(int(d.Fd()), path.Base(rel), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return refuse("%s clashes with a folder received in another part", rel)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("transfer: file %s: %w", rel, err)
	}
	return nil
}

// moveTo renames the file rel of t to the same place in dst, replacing a
// file there (the same file, when a part is taken in again after a kill).
func (t *tree) moveTo(dst *tree, rel string) error {
	t.room()
	dst.room()
	from, err := t.dir(parentOf(rel))
	if err != nil {
		return err
	}
	to, err := dst.dir(parentOf(rel))
	if err != nil {
		return err
	}
	if err := unix.Renameat(int(from.Fd()), path.Base(rel), int(to.Fd()), path.Base(rel)); err != nil {
		return fmt.Errorf("transfer: file %s: %w", rel, err)
	}
	return nil
}

func (t *tree) closeDirs() {
	for k, d := range t.dirs {
		if d != t.top {
			d.Close()
		}
		delete(t.dirs, k)
	}
}

func (t *tree) close() { t.closeDirs() }

// syncFS makes everything written to the file system of f durable: one
// syncfs(2) rather than an fsync per file, which is what `cp -r && sync`
// costs too.
func syncFS(f *os.File) error {
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("transfer: sync: %w", err)
	}
	return nil
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
