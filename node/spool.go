package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ferry/bundle"
)

// spool keeps bundle bodies on disk by ID, written the NNCP way: into a
// temporary file, synced, renamed to its ID, and the directory synced, so
// that a crash leaves either the whole file under its ID or debris in tmp/.
type spool struct {
	dir string
}

func (s *spool) path(id bundle.ID) string {
	h := id.String()
	return filepath.Join(s.dir, h[:2], h+".bundle")
}

// create opens a new temporary file.
func (s *spool) create() (*os.File, error) {
	var r [8]byte
	rand.Read(r[:])
	f, err := os.OpenFile(filepath.Join(s.dir, "tmp", hex.EncodeToString(r[:])+".part"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: spool: %w", err)
	}
	return f, nil
}

// commit syncs and closes f and renames it to id.
func (s *spool) commit(f *os.File, id bundle.ID) error {
	if err := s.finish(f); err != nil {
		return err
	}
	return s.place(f.Name(), id)
}

// finish syncs and closes f, the slow half of commit.
func (s *spool) finish(f *os.File) error {
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("node: spool: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("node: spool: %w", err)
	}
	return nil
}

// place renames the finished temporary file tmp to id.
func (s *spool) place(tmp string, id bundle.ID) error {
	dst := s.path(id)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: spool: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: spool: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

// discard closes and removes a temporary file.
func (s *spool) discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

func (s *spool) open(id bundle.ID) (*os.File, error) {
	f, err := os.Open(s.path(id))
	if err != nil {
		return nil, fmt.Errorf("node: spool: %w", err)
	}
	return f, nil
}

func (s *spool) remove(id bundle.ID) error {
	err := os.Remove(s.path(id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node: spool: %w", err)
	}
	return nil
}

// debrisAge is how old a temporary or unrecorded file must be before it is
// swept: younger ones may belong to another process at work on the same
// data directory.
const debrisAge = time.Hour

// sweep removes old temporary files, and spooled files and partial
// transfers (<id>.partial) that keep(id) rejects.
func (s *spool) sweep(now time.Time, keep func(bundle.ID) bool) error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil || now.Sub(info.ModTime()) < debrisAge {
			return nil
		}
		name := d.Name()
		hexID, ok := strings.CutSuffix(name, ".bundle")
		if !ok {
			hexID, ok = strings.CutSuffix(name, partialExt)
		}
		if ok {
			if id, err := bundle.ParseID(hexID); err == nil && keep(id) {
				return nil
			}
		}
		os.Remove(p)
		return nil
	})
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("node: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("node: sync dir %s: %w", dir, err)
	}
	return nil
}
