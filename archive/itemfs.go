package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// ItemFS is a read-only file system over one snapshot: its files, read
// from the chunk store (each chunk's hash checked as it is read). Names
// are those of the manifest, which the parser has already held to
// [bundle.ValidArchivePath]; Open takes only [fs.ValidPath] names, so no
// name reaches outside the snapshot.
type ItemFS struct {
	m       *bundle.ArchiveManifest
	st      *Store
	chunkAt []uint64            // start of each chunk in the content stream
	fileAt  []uint64            // start of each file in the content stream
	files   map[string]int      // path → index in m.Files
	dirs    map[string][]string // folder → sorted names of its children
}

var (
	_ fs.FS        = (*ItemFS)(nil)
	_ fs.ReadDirFS = (*ItemFS)(nil)
)

// OpenItem returns the newest complete snapshot of item as a file
// system.
func OpenItem(ctx context.Context, n *node.Node, item [16]byte) (*ItemFS, error) {
	var body []byte
	err := n.DB().QueryRowContext(ctx, `SELECT body FROM archive_manifests WHERE item = ? AND complete = 1
		ORDER BY version DESC, created DESC, origin LIMIT 1`, item[:]).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w %x (or no complete version of it)", ErrNoItem, item)
	}
	if err != nil {
		return nil, err
	}
	m, err := bundle.ParseArchiveManifest(body)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return nil, err
	}
	return NewItemFS(st, m), nil
}

// OpenProposal returns the snapshot proposal id holds as a file system,
// so that members can look at it before they endorse it.
func OpenProposal(ctx context.Context, n *node.Node, id int64) (*ItemFS, error) {
	p, err := GetProposal(ctx, n, id)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return nil, err
	}
	return NewItemFS(st, p.Manifest()), nil
}

// OpenItemCached is OpenItem that returns cached(item) instead when it
// serves the newest complete snapshot still, sparing the parse of a large
// manifest on every request.
func OpenItemCached(ctx context.Context, n *node.Node, item [16]byte, cached func([16]byte) *ItemFS) (*ItemFS, error) {
	if c := cached(item); c != nil {
		var version uint64
		var created int64
		var origin []byte
		err := n.DB().QueryRowContext(ctx, `SELECT version, created, origin FROM archive_manifests WHERE item = ? AND complete = 1
			ORDER BY version DESC, created DESC, origin LIMIT 1`, item[:]).Scan(&version, &created, &origin)
		if err == nil && version == c.m.Version && created == c.m.Created.UnixMilli() && string(origin) == string(c.m.Origin[:]) {
			return c, nil
		}
	}
	return OpenItem(ctx, n, item)
}

// NewItemFS serves snapshot m from store st.
func NewItemFS(st *Store, m *bundle.ArchiveManifest) *ItemFS {
	f := &ItemFS{m: m, st: st, files: make(map[string]int, len(m.Files)), dirs: map[string][]string{".": nil}}
	var off uint64
	for _, c := range m.Chunks {
		f.chunkAt = append(f.chunkAt, off)
		off += uint64(c.Size)
	}
	off = 0
	for i, file := range m.Files {
		f.fileAt = append(f.fileAt, off)
		off += file.Size
		f.files[file.Path] = i
		for p := file.Path; p != "."; {
			dir := path.Dir(p)
			_, known := f.dirs[dir]
			f.dirs[dir] = append(f.dirs[dir], path.Base(p))
			if known {
				break
			}
			p = dir
		}
	}
	for d, names := range f.dirs {
		slices.Sort(names)
		f.dirs[d] = slices.Compact(names)
	}
	return f
}

// Manifest returns the snapshot served.
func (f *ItemFS) Manifest() *bundle.ArchiveManifest { return f.m }

// Open opens a file or folder of the snapshot.
func (f *ItemFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if i, ok := f.files[name]; ok {
		return &itemFile{fsys: f, i: i, size: int64(f.m.Files[i].Size)}, nil
	}
	if _, ok := f.dirs[name]; ok {
		return &itemDir{fsys: f, name: name}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ReadDir lists a folder of the snapshot.
func (f *ItemFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	names, ok := f.dirs[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	out := make([]fs.DirEntry, 0, len(names))
	for _, n := range names {
		out = append(out, fs.FileInfoToDirEntry(f.stat(path.Join(name, n))))
	}
	return out, nil
}

func (f *ItemFS) stat(name string) fs.FileInfo {
	if i, ok := f.files[name]; ok {
		mode := fs.FileMode(0o444)
		if f.m.Files[i].Mode == bundle.ArchiveModeExec {
			mode = 0o555
		}
		return &itemInfo{name: path.Base(name), size: int64(f.m.Files[i].Size), mode: mode, mod: f.m.Created}
	}
	return &itemInfo{name: path.Base(name), mode: fs.ModeDir | 0o555, mod: f.m.Created}
}

type itemInfo struct {
	name string
	size int64
	mode fs.FileMode
	mod  time.Time
}

func (i *itemInfo) Name() string       { return i.name }
func (i *itemInfo) Size() int64        { return i.size }
func (i *itemInfo) Mode() fs.FileMode  { return i.mode }
func (i *itemInfo) ModTime() time.Time { return i.mod }
func (i *itemInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *itemInfo) Sys() any           { return nil }

// itemFile reads one file of a snapshot; it seeks, for HTTP ranges.
type itemFile struct {
	fsys *ItemFS
	i    int
	size int64
	off  int64
	buf  []byte // the chunk last read
	bufC int    // its index, -1 when none
}

func (r *itemFile) Stat() (fs.FileInfo, error) { return r.fsys.stat(r.fsys.m.Files[r.i].Path), nil }
func (r *itemFile) Close() error               { return nil }

func (r *itemFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return r.off, errors.New("archive: seek before the start of the file")
	}
	r.off = offset
	return offset, nil
}

func (r *itemFile) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if int64(len(p)) > r.size-r.off {
		p = p[:r.size-r.off]
	}
	abs := r.fsys.fileAt[r.i] + uint64(r.off)
	c := sort.Search(len(r.fsys.chunkAt), func(k int) bool { return r.fsys.chunkAt[k] > abs }) - 1
	if c < 0 {
		return 0, ErrChunkMissing
	}
	if r.buf == nil || r.bufC != c {
		b, err := r.fsys.st.Get(r.fsys.m.Chunks[c], r.buf)
		if err != nil {
			return 0, err
		}
		r.buf, r.bufC = b, c
	}
	n := copy(p, r.buf[abs-r.fsys.chunkAt[c]:])
	r.off += int64(n)
	return n, nil
}

// itemDir is an open folder of a snapshot.
type itemDir struct {
	fsys *ItemFS
	name string
	read int
}

func (d *itemDir) Stat() (fs.FileInfo, error) { return d.fsys.stat(d.name), nil }
func (d *itemDir) Close() error               { return nil }
func (d *itemDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *itemDir) ReadDir(count int) ([]fs.DirEntry, error) {
	all, err := d.fsys.ReadDir(d.name)
	if err != nil {
		return nil, err
	}
	rest := all[d.read:]
	if count > 0 && len(rest) > count {
		rest = rest[:count]
	}
	d.read += len(rest)
	if count > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	return rest, nil
}

// IsPage reports whether a path names an HTML page or a text file, the
// files whose text the search index holds.
func IsPage(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".html", ".htm", ".xhtml", ".txt", ".md":
		return true
	}
	return false
}
