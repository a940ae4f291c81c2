package archive

import (
	"bufio"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"ferry/bundle"
)

// ErrChunkMissing means a chunk a manifest names is not in the store.
var ErrChunkMissing = errors.New("archive: chunk missing")

// ErrChunkDamaged means a stored chunk no longer matches its checksum.
var ErrChunkDamaged = errors.New("archive: chunk damaged")

// Store tuning; variables so that tests can use small packs.
var (
	// packLimit is the size at which a pack is closed and the next one
	// started: far under FAT32's 4 GiB file limit.
	packLimit int64 = 1 << 30
	// flushBytes is how many new chunk bytes are buffered before the
	// pack is synced and their index rows committed (Flush does it too).
	flushBytes int64 = 128 << 20
)

// Store is a content-addressed chunk store. Chunks are appended to pack
// files (dir/packs/<id>.pack, see pack.go) and found through an index in
// the store's own SQLite database (dir/.index.db) that maps a chunk's
// SHA-256 to its pack, offset, size and CRC-32C. New chunks are buffered;
// [Store.Flush] (or a full batch) writes them, fsyncs the pack once and
// only then commits their index rows, so an indexed chunk is always
// durable, and a crash leaves at most unindexed bytes at a pack's end,
// which the next writer truncates. The index is a cache of the packs: if
// it is missing (a restored backup) it is rebuilt by scanning them.
//
// A Store is safe for concurrent use; [OpenStore] returns one shared
// Store per folder within a process, and packs are locked (flock) so that
// processes never write into the same pack.
type Store struct {
	dir string
	id  os.FileInfo // of the index database, to notice a removed folder

	mu      sync.Mutex
	db      *sql.DB
	find    *sql.Stmt // a chunk's location by hash
	readers map[int64]*os.File
	w       *packWriter
	pending map[[32]byte]chunkLoc
	order   [][32]byte // pending, in write order
	pendBuf int64
	lost    error // a write failed since the last Flush: its chunks are gone
}

type chunkLoc struct {
	pack int64
	off  int64 // of the data, after the entry header
	size uint32
	crc  uint32
}

type packWriter struct {
	id    int64
	f     *os.File
	bw    *bufio.Writer
	end   int64 // logical size, buffered bytes included
	fresh bool  // renamed into packs/ since the last flush: sync the folder
}

var (
	storesMu sync.Mutex
	stores   = map[string]*Store{}
)

// OpenStore opens (creating it if needed) the chunk store under dir. A
// store in the layout before packs (one file per chunk under dir/<2 hex>/)
// is moved into packs on first open.
func OpenStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: chunk store: %w", err)
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	if s := stores[abs]; s != nil {
		if fi, err := os.Stat(filepath.Join(abs, indexDBName)); err == nil && os.SameFile(fi, s.id) {
			return s, nil
		}
		s.close()
		delete(stores, abs)
	}
	s, err := openStore(abs)
	if err != nil {
		return nil, fmt.Errorf("archive: chunk store: %w", err)
	}
	stores[abs] = s
	return s, nil
}

// cachedStore returns the store open on dir in this process, or nil.
func cachedStore(dir string) *Store {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	return stores[abs]
}

const indexDBName = ".index.db"

const storeSchema = `
CREATE TABLE IF NOT EXISTS packs (id INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS chunks (
	hash BLOB PRIMARY KEY,
	pack INTEGER NOT NULL,
	off  INTEGER NOT NULL,
	size INTEGER NOT NULL,
	crc  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_pack ON chunks (pack, off);`

func openStore(dir string) (*Store, error) {
	for _, d := range []string{"packs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	_, err := os.Stat(filepath.Join(dir, indexDBName))
	fresh := errors.Is(err, fs.ErrNotExist)
	q := url.Values{}
	// busy_timeout first: the pragmas run in order, and journal_mode on a
	// database another process is opening must wait, not fail at once.
	for _, p := range []string{"busy_timeout(30000)", "journal_mode(WAL)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, indexDBName)+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(storeSchema); err != nil {
		db.Close()
		return nil, err
	}
	find, err := db.Prepare(`SELECT pack, off, size, crc FROM chunks WHERE hash = ?`)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{dir: dir, db: db, find: find, readers: map[int64]*os.File{}, pending: map[[32]byte]chunkLoc{}}
	if s.id, err = os.Stat(filepath.Join(dir, indexDBName)); err != nil {
		db.Close()
		return nil, err
	}
	if fresh {
		if err := s.reindex(); err != nil {
			s.close()
			return nil, err
		}
	}
	if err := s.migrateFiles(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *Store) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropWriter()
	for _, f := range s.readers {
		f.Close()
	}
	s.readers = map[int64]*os.File{}
	s.find.Close()
	s.db.Close()
}

// storeDir is where a node keeps its chunks.
func storeDir(dataDir string) string { return filepath.Join(dataDir, "archive", "chunks") }

func (s *Store) packPath(id int64) string {
	return filepath.Join(s.dir, "packs", fmt.Sprintf("%08d.pack", id))
}

// packIDs lists the packs on disk, newest first.
func (s *Store) packIDs() ([]int64, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "packs"))
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if id, err := strconv.ParseInt(name, 10, 64); ok && err == nil && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	return ids, nil
}

// reindex rebuilds the index from the packs (the index was missing):
// every whole entry whose checksums hold is indexed again.
func (s *Store) reindex() error {
	ids, err := s.packIDs()
	if err != nil || len(ids) == 0 {
		return err
	}
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, id := range ids {
		if _, err := tx.Exec(`INSERT OR IGNORE INTO packs (id) VALUES (?)`, id); err != nil {
			return err
		}
		f, err := os.Open(s.packPath(id))
		if err != nil {
			return err
		}
		_, err = scanPack(bufio.NewReaderSize(f, 1<<20), func(h [32]byte, off int64, data []byte) error {
			_, err := tx.Exec(`INSERT OR IGNORE INTO chunks (hash, pack, off, size, crc) VALUES (?, ?, ?, ?, ?)`,
				h[:], id, off, len(data), crc(data))
			return err
		})
		f.Close()
		if err != nil && !errors.Is(err, errPackEnd) {
			return err
		}
	}
	return tx.Commit()
}

// migrateFiles moves chunks of the old layout (dir/<2 hex>/<64 hex>, one
// file each) into packs, and removes each file once its chunk is durable
// and indexed. A file that does not hash to its name is left in place.
func (s *Store) migrateFiles() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != 2 {
			continue
		}
		sub := filepath.Join(s.dir, e.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		var done []string
		for _, f := range files {
			want, err := hex.DecodeString(f.Name())
			if err != nil || len(want) != 32 || !f.Type().IsRegular() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(sub, f.Name()))
			if err != nil {
				return err
			}
			if sha256.Sum256(data) != [32]byte(want) || len(data) == 0 || len(data) > bundle.MaxArchiveChunkSize {
				continue
			}
			if _, _, err := s.Put(data); err != nil {
				return err
			}
			done = append(done, f.Name())
		}
		if err := s.Flush(); err != nil {
			return err
		}
		for _, name := range done {
			if err := os.Remove(filepath.Join(sub, name)); err != nil {
				return err
			}
		}
		os.Remove(sub) // only if empty
	}
	return nil
}

// lookup finds a chunk in the pending batch or the index. Call with s.mu
// held.
func (s *Store) lookup(h [32]byte) (chunkLoc, bool, error) {
	if l, ok := s.pending[h]; ok {
		return l, true, nil
	}
	var l chunkLoc
	err := s.find.QueryRow(h[:]).Scan(&l.pack, &l.off, &l.size, &l.crc)
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("archive: chunk index: %w", err)
	}
	return l, true, nil
}

// Has reports whether the chunk is stored.
func (s *Store) Has(h [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok, _ := s.lookup(h)
	return ok
}

// Put stores data under its hash, unless it is there already, and
// reports whether it wrote it. The chunk is durable and indexed once
// Flush returns.
func (s *Store) Put(data []byte) (bundle.ArchiveChunkRef, bool, error) {
	ref := chunkRef(data)
	if len(data) == 0 || len(data) > bundle.MaxArchiveChunkSize {
		return ref, false, &bundle.LimitError{What: "archive chunk size", Got: uint64(len(data)), Limit: bundle.MaxArchiveChunkSize}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok, err := s.lookup(ref.Hash); err != nil || ok {
		return ref, false, err
	}
	if s.w != nil && s.w.end+entryHeader+int64(len(data)) > packLimit && s.w.end > int64(len(packMagic)) {
		if err := s.flushLocked(); err != nil {
			return ref, false, err
		}
		s.dropWriter()
	}
	if s.w == nil {
		if err := s.startWriter(); err != nil {
			return ref, false, fmt.Errorf("archive: store chunk: %w", err)
		}
	}
	var hdr [entryHeader]byte
	l := chunkLoc{pack: s.w.id, off: s.w.end + entryHeader, size: uint32(len(data)), crc: crc(data)}
	_, err := s.w.bw.Write(appendEntryHeader(hdr[:0], ref.Hash, data))
	if err == nil {
		_, err = s.w.bw.Write(data)
	}
	if err != nil {
		s.fail(err)
		return ref, false, fmt.Errorf("archive: store chunk: %w", err)
	}
	s.w.end = l.off + int64(len(data))
	s.pending[ref.Hash] = l
	s.order = append(s.order, ref.Hash)
	s.pendBuf += int64(len(data))
	if s.pendBuf >= flushBytes {
		if err := s.flushLocked(); err != nil {
			return ref, false, err
		}
	}
	return ref, true, nil
}

// Flush makes every chunk Put so far durable (one fsync of the pack) and
// then commits their index rows.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

// syncDirs is the name Flush had when every chunk was a file.
func (s *Store) syncDirs() error { return s.Flush() }

func (s *Store) flushLocked() error {
	if err := s.lost; err != nil {
		s.lost = nil
		return fmt.Errorf("archive: store chunks: %w", err)
	}
	if len(s.order) == 0 {
		return nil
	}
	err := s.w.bw.Flush()
	if err == nil {
		err = s.w.f.Sync()
	}
	if err == nil && s.w.fresh {
		err = syncDir(filepath.Join(s.dir, "packs"))
	}
	if err == nil {
		s.w.fresh = false
		err = s.commitIndex()
	}
	if err != nil {
		s.fail(err)
		s.lost = nil // reported here
		return fmt.Errorf("archive: store chunks: %w", err)
	}
	s.pending = map[[32]byte]chunkLoc{}
	s.order = s.order[:0]
	s.pendBuf = 0
	return nil
}

func (s *Store) commitIndex() error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT OR IGNORE INTO chunks (hash, pack, off, size, crc) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, h := range s.order {
		l := s.pending[h]
		if _, err := stmt.Exec(h[:], l.pack, l.off, l.size, l.crc); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// fail drops the pending batch and the pack being written after a write
// error: none of it was indexed, so it is debris for the next writer.
func (s *Store) fail(err error) {
	if len(s.order) > 0 {
		s.lost = err
	}
	s.pending = map[[32]byte]chunkLoc{}
	s.order = s.order[:0]
	s.pendBuf = 0
	s.dropWriter()
}

func (s *Store) dropWriter() {
	if s.w != nil {
		s.w.f.Close() // releases the lock
		s.w = nil
	}
}

// startWriter picks the pack to append to. Packs no live process holds
// are tidied first: bytes past their last indexed chunk are cut off, and a
// pack with no indexed chunk is removed. The newest such pack with room
// is reused; otherwise a new one is made.
func (s *Store) startWriter() error {
	s.removeDeadTemps()
	ids, err := s.packIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		f, err := os.OpenFile(s.packPath(id), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if !tryLock(f) {
			f.Close()
			continue
		}
		var n int
		var end int64
		if err := s.db.QueryRow(`SELECT count(*), COALESCE(MAX(off + size), 0) FROM chunks WHERE pack = ?`, id).Scan(&n, &end); err != nil {
			f.Close()
			return err
		}
		if n == 0 {
			f.Close()
			if err := os.Remove(s.packPath(id)); err != nil {
				return err
			}
			if r := s.readers[id]; r != nil {
				r.Close()
				delete(s.readers, id)
			}
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Size() > end {
			if err := f.Truncate(end); err != nil {
				f.Close()
				return err
			}
		}
		if s.w == nil && end < packLimit/2 {
			if _, err := f.Seek(end, io.SeekStart); err != nil {
				f.Close()
				return err
			}
			s.w = &packWriter{id: id, f: f, bw: bufio.NewWriterSize(f, 256<<10), end: end}
			continue
		}
		f.Close()
	}
	if s.w != nil {
		return nil
	}
	return s.newPack()
}

// removeDeadTemps removes packs left under tmp/ by writers that died
// between creating and naming them (unlocked: their process is gone).
func (s *Store) removeDeadTemps() {
	ents, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
	for _, e := range ents {
		p := filepath.Join(s.dir, "tmp", e.Name())
		if f, err := os.Open(p); err == nil {
			if tryLock(f) {
				os.Remove(p)
			}
			f.Close()
		}
	}
}

// newPack makes a pack under tmp/, locks it, writes its header and only
// then renames it into packs/, so that no other process sees it unlocked.
func (s *Store) newPack() error {
	res, err := s.db.Exec(`INSERT INTO packs DEFAULT VALUES`)
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, "tmp", fmt.Sprintf("%08d.pack", id))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	tryLock(f) // a fresh file: nobody else holds it
	if _, err := f.WriteString(packMagic); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, s.packPath(id)); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	s.w = &packWriter{id: id, f: f, bw: bufio.NewWriterSize(f, 256<<10), end: int64(len(packMagic)), fresh: true}
	return nil
}

// Get reads a chunk into buf (grown as needed) and checks its size and
// CRC-32C. Its SHA-256 was checked when it entered the store, and every
// file rebuilt from chunks is checked against its SHA-256.
func (s *Store) Get(ref bundle.ArchiveChunkRef, buf []byte) ([]byte, error) {
	s.mu.Lock()
	l, ok, err := s.lookup(ref.Hash)
	if err == nil && ok && s.w != nil && l.pack == s.w.id && s.w.bw.Buffered() > 0 {
		if err = s.w.bw.Flush(); err != nil {
			s.fail(err)
		}
	}
	var f *os.File
	if err == nil && ok {
		if f = s.readers[l.pack]; f == nil {
			if f, err = os.Open(s.packPath(l.pack)); err == nil {
				s.readers[l.pack] = f
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("archive: read chunk: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %x", ErrChunkMissing, ref.Hash)
	}
	if l.size != ref.Size {
		return nil, fmt.Errorf("%w: %x: stored size %d, wanted %d", ErrChunkDamaged, ref.Hash, l.size, ref.Size)
	}
	if cap(buf) < int(ref.Size) {
		buf = make([]byte, ref.Size)
	}
	buf = buf[:ref.Size]
	if _, err := f.ReadAt(buf, l.off); err != nil {
		return nil, fmt.Errorf("%w: %x: %v", ErrChunkDamaged, ref.Hash, err)
	}
	if crc(buf) != l.crc {
		return nil, fmt.Errorf("%w: %x", ErrChunkDamaged, ref.Hash)
	}
	return buf, nil
}

// StoreStats counts what a store holds.
type StoreStats struct {
	Chunks int   // indexed chunks
	Bytes  int64 // their bytes
	Packs  int   // pack files
}

// Stats counts the indexed chunks and the pack files.
func (s *Store) Stats() (StoreStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st StoreStats
	if err := s.db.QueryRow(`SELECT count(*), COALESCE(SUM(size), 0) FROM chunks`).Scan(&st.Chunks, &st.Bytes); err != nil {
		return st, err
	}
	ids, err := s.packIDs()
	st.Packs = len(ids)
	return st, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Check reads every indexed chunk back and checks its SHA-256 (a full
// scrub). It returns the first damaged or missing chunk's error wrapped
// with ErrChunkDamaged, and how many chunks it checked.
func (s *Store) Check() (int, error) {
	if err := s.Flush(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	rows, err := s.db.Query(`SELECT hash, size FROM chunks ORDER BY pack, off`)
	var refs []bundle.ArchiveChunkRef
	for err == nil && rows.Next() {
		var h []byte
		var r bundle.ArchiveChunkRef
		if err = rows.Scan(&h, &r.Size); err == nil {
			r.Hash = [32]byte(h)
			refs = append(refs, r)
		}
	}
	if rows != nil {
		rows.Close()
	}
	s.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("archive: chunk index: %w", err)
	}
	var buf []byte
	for i, r := range refs {
		b, err := s.Get(r, buf)
		if err != nil {
			return i, err
		}
		if sha256.Sum256(b) != r.Hash {
			return i, fmt.Errorf("%w: %x", ErrChunkDamaged, r.Hash)
		}
		buf = b
	}
	return len(refs), nil
}
