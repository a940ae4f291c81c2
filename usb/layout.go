package usb

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ferry/bundle"
)

// Folder and file names on a stick. All are portable: ASCII, short, no
// characters FAT32 or exFAT refuse.
const (
	Dir          = "FERRY"
	bundlesDir   = "bundles"
	inventoryDir = "inventory"
	damagedDir   = "damaged"
	readmeName   = "README.txt"
	bundleExt    = ".bundle"
	inventoryExt = ".inv"
)

const readmeText = `This stick carries messages between communities for ferry.

Plug it into a ferry node (or run "ferry usb sync PATH" there): the node takes
what the stick carries for it, puts on what other communities are waiting for,
and removes what has arrived everywhere. Then carry the stick to the next
community.

  bundles/     signed, encrypted bundles; only their recipients can read them
  inventory/   each node's signed note of what it holds and whom it carries for
  damaged/     files a node could not read; safe to delete

Please do not edit or rename these files. Removing the stick at any moment is
safe: half-written files are hidden, and the next sync cleans them up.
`

// layout is the FERRY folder on one stick.
type layout struct {
	root string // .../FERRY
}

func (l layout) bundles() string   { return filepath.Join(l.root, bundlesDir) }
func (l layout) inventory() string { return filepath.Join(l.root, inventoryDir) }
func (l layout) damaged() string   { return filepath.Join(l.root, damagedDir) }

// bundlePath is where a bundle lives on the stick: shared out over 256
// folders, since FAT32 slows down and then stops at 65,534 entries per
// folder (a long name takes several entries).
func (l layout) bundlePath(id bundle.ID) string {
	h := id.String()
	return filepath.Join(l.bundles(), h[:2], h+bundleExt)
}

func (l layout) inventoryPath(id bundle.NodeID) string {
	return filepath.Join(l.inventory(), id.String()+inventoryExt)
}

// prepare creates the folders and the README when missing.
func (l layout) prepare() error {
	for _, d := range []string{l.root, l.bundles(), l.inventory()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("usb: %w", err)
		}
	}
	readme := filepath.Join(l.root, readmeName)
	if _, err := os.Stat(readme); errors.Is(err, fs.ErrNotExist) {
		if err := writeAtomic(readme, strings.NewReader(readmeText)); err != nil {
			return err
		}
	}
	return nil
}

// sweepDebris removes what interrupted writes left: hidden temporary files.
// Only one node syncs a stick at a time, so every one of them is debris.
func (l layout) sweepDebris() (int, error) {
	n := 0
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // an unreadable corner of a damaged stick: go on
		}
		if !d.IsDir() && isTemp(d.Name()) {
			if os.Remove(p) == nil {
				n++
			}
		}
		return nil
	})
	return n, err
}

// isTemp reports whether name is a temporary name of ferry's writers.
// Only those are swept: a person's own "film.part" is not ferry's to delete.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".ferry-") && strings.HasSuffix(name, ".part")
}

// isShard reports whether name is one of the 256 folders bundles are
// shared out over ("00" to "ff"); other folders are a person's own.
func isShard(name string) bool {
	if len(name) != 2 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// writeAtomic writes r to path through a hidden temporary file in the same
// folder: write, fsync, rename, fsync the folder. A stick pulled out at any
// moment leaves either the old file, the new one, or a hidden temporary.
func writeAtomic(path string, r io.Reader) error {
	_, err := copyAtomic(path, r, nil)
	return err
}

// copyAtomic is writeAtomic that reports progress and the bytes written.
func copyAtomic(path string, r io.Reader, progress func(int64)) (int64, error) {
	dir := filepath.Dir(path)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".ferry-"+hex.EncodeToString(rnd[:])+".part")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("usb: %w", err)
	}
	fail := func(err error) (int64, error) {
		f.Close()
		os.Remove(tmp)
		return 0, fmt.Errorf("usb: write %s: %w", filepath.Base(path), err)
	}
	n, err := copyProgress(f, r, progress)
	if err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("usb: write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("usb: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return 0, err
	}
	return n, nil
}

// copyStep is how much copyProgress copies between progress reports.
const copyStep = 1 << 20

// copyProgress copies r to f in steps of copyStep, reporting each. A
// step goes through f.ReadFrom, so that a copy from a file (a spooled
// bundle) stays in the kernel (copy_file_range or splice) rather than
// passing through a buffer here.
func copyProgress(f *os.File, r io.Reader, progress func(int64)) (int64, error) {
	var total int64
	for {
		n, err := io.CopyN(f, r, copyStep)
		total += n
		if progress != nil && n > 0 {
			progress(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("usb: %w", err)
	}
	defer d.Close()
	// Some file systems (and some FAT drivers) refuse to sync a folder;
	// the rename itself is then as durable as they make it.
	d.Sync()
	return nil
}
