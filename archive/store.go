package archive

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"ferry/bundle"
)

// ErrChunkMissing means a chunk a manifest names is not in the store.
var ErrChunkMissing = errors.New("archive: chunk missing")

// ErrChunkDamaged means a stored chunk no longer hashes to its name.
var ErrChunkDamaged = errors.New("archive: chunk damaged")

// Store is a content-addressed chunk store: each chunk is a file named by
// the SHA-256 of its bytes, under dir/<2 hex>/. Writes go to a temporary
// file that is synced and then renamed, so a chunk file is whole or absent.
type Store struct {
	dir string
}

// OpenStore opens (creating it if needed) the chunk store under dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("archive: chunk store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// storeDir is where a node keeps its chunks.
func storeDir(dataDir string) string { return filepath.Join(dataDir, "archive", "chunks") }

func (s *Store) path(h [32]byte) string {
	x := hex.EncodeToString(h[:])
	return filepath.Join(s.dir, x[:2], x)
}

// Has reports whether the chunk is stored.
func (s *Store) Has(h [32]byte) bool {
	_, err := os.Stat(s.path(h))
	return err == nil
}

// Put stores data under its hash, unless it is there already, and
// reports whether it wrote it.
func (s *Store) Put(data []byte) (bundle.ArchiveChunkRef, bool, error) {
	ref := chunkRef(data)
	dst := s.path(ref.Hash)
	if _, err := os.Stat(dst); err == nil {
		return ref, false, nil
	}
	var r [8]byte
	rand.Read(r[:])
	tmp := filepath.Join(s.dir, "tmp", hex.EncodeToString(r[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return ref, false, fmt.Errorf("archive: store chunk: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o700)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return ref, false, fmt.Errorf("archive: store chunk: %w", err)
	}
	return ref, true, nil
}

// Get reads a chunk into buf (grown as needed) and checks its hash and
// size against ref.
func (s *Store) Get(ref bundle.ArchiveChunkRef, buf []byte) ([]byte, error) {
	f, err := os.Open(s.path(ref.Hash))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %x", ErrChunkMissing, ref.Hash)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: read chunk: %w", err)
	}
	defer f.Close()
	if cap(buf) < int(ref.Size) {
		buf = make([]byte, ref.Size)
	}
	buf = buf[:ref.Size]
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("%w: %x: %v", ErrChunkDamaged, ref.Hash, err)
	}
	if sha256.Sum256(buf) != ref.Hash {
		return nil, fmt.Errorf("%w: %x", ErrChunkDamaged, ref.Hash)
	}
	return buf, nil
}

// syncDirs syncs the store's subfolders, so that renames of new chunks
// survive a power cut.
func (s *Store) syncDirs() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() && e.Name() != "tmp" {
			if err := syncDir(filepath.Join(s.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
