package node

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A backup is a folder that mirrors a data directory: the identity files
// (node.key, identity.txt), a snapshot of the database (ferry.db), the
// bundle spool with partial transfers (spool/), the file bodies (files/),
// any other file the node keeps there but temporary ones, and
// MANIFEST.json listing every file with its size and SHA-256. Every
// file is written to a temporary name, synced and renamed; the manifest is
// written last, so a folder without one is an unfinished backup.

// BackupFormat names the backup layout in its manifest.
const BackupFormat = "ferry-backup/1"

// ManifestFile is the name of a backup's manifest.
const ManifestFile = "MANIFEST.json"

// Backup errors.
var (
	// ErrNotEmpty means a backup or restore target already holds files.
	ErrNotEmpty = errors.New("node: target directory is not empty")
	// ErrBadBackup means a backup is incomplete, damaged or not a backup.
	ErrBadBackup = errors.New("node: bad backup")
)

// Manifest describes a backup.
type Manifest struct {
	Format  string         `json:"format"`
	Node    string         `json:"node"`
	ID      string         `json:"id"`
	Created time.Time      `json:"created"`
	Files   []BackupedFile `json:"files"`
	// Missing lists bodies the database snapshot refers to that vanished
	// before they could be copied (delivered or deleted meanwhile).
	Missing []string `json:"missing,omitempty"`
	// SeqFloor is set by Restore (not stored): where the restored node's
	// new sequence numbers start.
	SeqFloor uint64 `json:"-"`
}

// BackupedFile is one file of a backup.
type BackupedFile struct {
	Path   string `json:"path"` // slash-separated, relative to the backup
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Bytes returns the total size of the backup's files.
func (m *Manifest) Bytes() int64 {
	var b int64
	for _, f := range m.Files {
		b += f.Size
	}
	return b
}

// Backup writes a consistent backup of the node into dir, which must be
// empty or absent. It is safe while this or another process uses the
// node: the database snapshot is one read transaction (VACUUM INTO), and
// bodies are copied both before it and after it, so that every body the
// snapshot refers to is copied unless it was removed in between (it is
// then listed in Manifest.Missing).
func (n *Node) Backup(ctx context.Context, dir string) (*Manifest, error) {
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	b := &backup{src: n.dir, dst: dir, done: map[string]bool{}, dirs: map[string]bool{}}
	m := &Manifest{Format: BackupFormat, Node: n.name, ID: n.ID().String(), Created: n.now().UTC()}
	for _, name := range []string{keyFile, identityFile} {
		if err := b.copy(name); err != nil {
			return nil, err
		}
	}
	if err := b.copyTree(ctx, false); err != nil {
		return nil, err
	}
	if err := n.snapshot(ctx, b); err != nil {
		return nil, err
	}
	if err := b.copyTree(ctx, true); err != nil {
		return nil, err
	}
	missing, err := b.missing(ctx)
	if err != nil {
		return nil, err
	}
	m.Files, m.Missing = b.files, missing
	slices.SortFunc(m.Files, func(x, y BackupedFile) int { return strings.Compare(x.Path, y.Path) })
	if err := b.syncDirs(); err != nil {
		return nil, err
	}
	if err := writeManifest(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// backup is one backup in progress.
type backup struct {
	src, dst string
	files    []BackupedFile
	done     map[string]bool // slash paths copied
	dirs     map[string]bool // destination folders to sync
}

// snapshot writes the database as of one read transaction.
func (n *Node) snapshot(ctx context.Context, b *backup) error {
	tmp := filepath.Join(b.dst, dbFile+".part")
	os.Remove(tmp)
	if _, err := n.db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: backup: database snapshot: %w", err)
	}
	size, sum, err := syncHash(tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: backup: database snapshot: %w", err)
	}
	return b.commit(tmp, dbFile, size, sum)
}

// copyTree copies every file of the data directory not copied yet but the
// database (snapshotted instead) and temporary files: the spool, file
// bodies, and whatever later parts of the node keep there. Partial
// transfers are copied only after the snapshot (partials true): they grow
// while a transfer runs, and the copy must hold at least the bytes the
// snapshot calls durable.
func (b *backup) copyTree(ctx context.Context, partials bool) error {
	err := filepath.WalkDir(b.src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(b.src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !backedUp(rel, partials) || b.done[rel] {
			return nil
		}
		err = b.copy(rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the walk saw it
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("node: backup: %w", err)
	}
	return nil
}

// backedUp reports whether a data file (slash path) belongs in a backup:
// not the live database and its WAL, nor temporary files (in a tmp folder,
// or named .part, .tmp or hidden), except partial transfers
// (spool/tmp/<id>.partial) and archive packs once the snapshot is taken.
func backedUp(rel string, partials bool) bool {
	parts := strings.Split(rel, "/")
	base := parts[len(parts)-1]
	if len(parts) == 1 && strings.HasPrefix(base, dbFile) {
		return false
	}
	if len(parts) == 4 && parts[0] == "archive" && parts[1] == "chunks" && parts[2] == "packs" {
		// Archive packs grow by appending, and the snapshot may name
		// chunks appended since a first copy: copied after it, a pack
		// holds at least every chunk the snapshot counts on (the archive
		// rebuilds its index from the packs on restore).
		return partials && strings.HasSuffix(base, ".pack")
	}
	if slices.Contains(parts[:len(parts)-1], "tmp") {
		return partials && len(parts) == 3 && parts[0] == spoolDir && parts[1] == "tmp" && strings.HasSuffix(base, partialExt)
	}
	return !strings.HasPrefix(base, ".") && !strings.HasSuffix(base, ".part") && !strings.HasSuffix(base, ".tmp")
}

// copy copies the data file rel (slash path) into the backup.
func (b *backup) copy(rel string) error {
	src, err := os.Open(filepath.Join(b.src, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer src.Close()
	dst := filepath.Join(b.dst, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("node: backup: %w", err)
	}
	tmp := dst + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("node: backup: %w", err)
	}
	size, sum, err := copyHashed(f, src)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: backup: copy %s: %w", rel, err)
	}
	return b.commit(tmp, rel, size, sum)
}

// commit renames a written, synced temporary file to rel and lists it.
func (b *backup) commit(tmp, rel string, size int64, sum string) error {
	dst := filepath.Join(b.dst, filepath.FromSlash(rel))
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: backup: %w", err)
	}
	b.dirs[filepath.Dir(dst)] = true
	b.done[rel] = true
	b.files = append(b.files, BackupedFile{Path: rel, Size: size, SHA256: sum})
	return nil
}

// missing lists the bodies the snapshot refers to that the backup lacks.
func (b *backup) missing(ctx context.Context) ([]string, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.dst, dbFile)+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("node: backup: %w", err)
	}
	defer db.Close()
	var want []string
	rows, err := db.QueryContext(ctx, `SELECT 'spool/' || substr(lower(hex(id)), 1, 2) || '/' || lower(hex(id)) || '.bundle'
		FROM bundles WHERE state IN ('outbound', 'carry')
		UNION ALL SELECT 'files/' || substr(hash, 1, 2) || '/' || hash FROM blobs`)
	if err != nil {
		return nil, fmt.Errorf("node: backup: check snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("node: backup: check snapshot: %w", err)
		}
		if !b.done[p] {
			want = append(want, p)
		}
	}
	return want, rows.Err()
}

func (b *backup) syncDirs() error {
	for d := range b.dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return syncDir(b.dst)
}

func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestFile+".part")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("node: backup: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ManifestFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: backup: manifest: %w", err)
	}
	return syncDir(dir)
}

// ReadManifest reads the manifest of the backup in dir.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s (not a backup, or an unfinished one)", ErrBadBackup, dir, ManifestFile)
	}
	if err != nil {
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadBackup, ManifestFile, err)
	}
	if m.Format != BackupFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadBackup, m.Format, BackupFormat)
	}
	have := map[string]bool{}
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("%w: bad path %q in manifest", ErrBadBackup, f.Path)
		}
		have[f.Path] = true
	}
	for _, p := range []string{keyFile, identityFile, dbFile} {
		if !have[p] {
			return nil, fmt.Errorf("%w: the manifest lacks %s", ErrBadBackup, p)
		}
	}
	return &m, nil
}

// Restore copies the backup in from into the data directory dir, which
// must be empty or absent, checking every file against the manifest. On
// any error it removes what it wrote. It returns the backup's manifest.
func Restore(from, dir string) (*Manifest, error) {
	m, err := ReadManifest(from)
	if err != nil {
		return nil, err
	}
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	if err := restoreFiles(from, dir, m); err != nil {
		clearDir(dir)
		return nil, err
	}
	n, err := Open(dir, Options{})
	if err != nil {
		clearDir(dir)
		return nil, fmt.Errorf("node: restore: the restored node does not open: %w", err)
	}
	defer n.Close()
	if n.ID().String() != m.ID {
		clearDir(dir)
		return nil, fmt.Errorf("%w: the keys are node %s, the manifest says %s", ErrBadBackup, n.ID().Short(), m.ID)
	}
	// The node may have numbered bundles and messages after the backup:
	// new numbers start above any it can have used (seal.go).
	if m.SeqFloor, err = n.raiseSeqFloor(context.Background(), time.Now()); err != nil {
		clearDir(dir)
		return nil, fmt.Errorf("node: restore: %w", err)
	}
	return m, nil
}

func restoreFiles(from, dir string, m *Manifest) error {
	root, err := os.OpenRoot(from)
	if err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	defer root.Close()
	dirs := map[string]bool{dir: true}
	for _, bf := range m.Files {
		dst := filepath.Join(dir, filepath.FromSlash(bf.Path))
		if err := restoreFile(root, bf, dst); err != nil {
			return err
		}
		dirs[filepath.Dir(dst)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func restoreFile(root *os.Root, bf BackupedFile, dst string) error {
	src, err := root.Open(bf.Path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	size, sum, err := copyHashed(f, src)
	if err != nil {
		return fmt.Errorf("node: restore: %s: %w", bf.Path, err)
	}
	if size != bf.Size || sum != bf.SHA256 {
		return fmt.Errorf("%w: %s is %d bytes with SHA-256 %s, the manifest says %d bytes, %s", ErrBadBackup, bf.Path, size, sum, bf.Size, bf.SHA256)
	}
	return nil
}

// emptyDir creates dir if absent and fails with ErrNotEmpty if it holds
// anything.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("node: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEmpty, dir)
	}
	return nil
}

// clearDir empties dir, which restore found empty.
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// syncHash syncs the file at p and returns its size and SHA-256.
func syncHash(p string) (int64, string, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, "", err
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// copyHashed copies src into f, syncs and closes f, and returns the bytes
// copied and their SHA-256 in hex.
func copyHashed(f *os.File, src io.Reader) (int64, string, error) {
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return size, hex.EncodeToString(h.Sum(nil)), err
}
