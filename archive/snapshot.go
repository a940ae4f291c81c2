package archive

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// Meta describes an item. Empty fields of a new version keep the values
// of the item's previous version.
type Meta struct {
	Title       string
	Description string
	Tags        []string
	Lang        string
	Source      string
}

// AddReport says what Add did.
type AddReport struct {
	Manifest  *bundle.ArchiveManifest
	NewChunks int   // chunks written to the store
	NewBytes  int64 // their bytes
	Skipped   []string
}

// Add takes a snapshot of the tree at path (or of the single file path)
// into n's archive, as a new item, or as a new version of item when it is
// not nil. Symbolic links, devices and other non-regular files are
// skipped and listed in the report; a name that could not be written back
// safely on every system (see [bundle.ValidArchivePath]) refuses the
// whole snapshot with the reason.
func Add(ctx context.Context, n *node.Node, path string, item *[16]byte, meta Meta) (*AddReport, error) {
	rep, err := snapshot(ctx, n, path, item, meta)
	if err != nil {
		return nil, err
	}
	if err := saveManifest(ctx, n.DB(), rep.Manifest, true, n.Now()); err != nil {
		return nil, err
	}
	return rep, nil
}

// snapshot chunks the tree at path into the store and signs its
// manifest, without entering it in the archive.
func snapshot(ctx context.Context, n *node.Node, path string, item *[16]byte, meta Meta) (*AddReport, error) {
	m := &bundle.ArchiveManifest{Version: 1, Created: n.Now().Truncate(time.Millisecond).UTC(), Title: meta.Title,
		Description: meta.Description, Tags: meta.Tags, Lang: meta.Lang, Source: meta.Source}
	if item != nil {
		prev, err := Latest(ctx, n, *item)
		if err != nil {
			return nil, err
		}
		m.Item, m.Version = prev.Item, prev.Version+1
		inherit(&m.Title, prev.Title)
		inherit(&m.Description, prev.Description)
		inherit(&m.Lang, prev.Lang)
		inherit(&m.Source, prev.Source)
		if m.Tags == nil {
			m.Tags = prev.Tags
		}
	} else {
		rand.Read(m.Item[:])
	}
	if m.Title == "" {
		return nil, errors.New("archive: an item needs a title")
	}
	root, files, skipped, err := Walk(path)
	if err != nil {
		return nil, fmt.Errorf("archive: add %w", err)
	}
	defer root.Close()
	m.Files = files
	st, err := OpenStore(storeDir(n.Dir()))
	if err != nil {
		return nil, err
	}
	rep := &AddReport{Manifest: m, Skipped: skipped}
	pp := newPutter(st)
	put := func(data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return pp.put(data)
	}
	for lo := 0; lo < len(files); {
		// A run is one large file, or consecutive small ones.
		hi := lo + 1
		if files[lo].Size < uint64(ProfileText.Max) {
			for hi < len(files) && files[hi].Size < uint64(ProfileText.Max) {
				hi++
			}
		}
		p := ProfileText
		if hi == lo+1 && files[lo].Size >= bulkMinSize {
			bulk, err := sampleBulk(root, files[lo].Path)
			if err != nil {
				return nil, fmt.Errorf("archive: add %s: %w", path, err)
			}
			if bulk {
				p = ProfileBulk
			}
		}
		rr := &runReader{root: root, files: files[lo:hi], h: sha256.New()}
		if err := chunkStream(rr, p, put); err != nil {
			if perr := pp.close(); perr != nil {
				err = perr // the store's own error, not "storing failed"
			}
			return nil, fmt.Errorf("archive: add %s: %w", path, err)
		}
		if rr.i != len(rr.files) {
			pp.close()
			return nil, fmt.Errorf("archive: add %s: chunker stopped early", path)
		}
		lo = hi
	}
	if err := pp.close(); err != nil {
		return nil, fmt.Errorf("archive: add %s: %w", path, err)
	}
	m.Chunks, rep.NewChunks, rep.NewBytes = pp.refs, pp.newChunks, pp.newBytes
	if err := st.Flush(); err != nil {
		return nil, fmt.Errorf("archive: add: %w", err)
	}
	if err := m.Sign(n.Identity().Sign); err != nil {
		return nil, fmt.Errorf("archive: add %s: %w", path, err)
	}
	return rep, nil
}

// putter hashes and stores chunks on a second goroutine while the
// caller reads, hashes and cuts the next ones: two cores share the work
// of Add. At most putQueue chunks wait, so memory stays bounded (bulk
// chunks are at most 4 MiB).
type putter struct {
	st   *Store
	ch   chan []byte
	done chan struct{}
	err  error       // set by the worker; read after done
	bad  atomic.Bool // the worker failed: stop feeding it

	refs      []bundle.ArchiveChunkRef
	newChunks int
	newBytes  int64
}

const putQueue = 2

// chunkCopies recycles the buffers chunks wait in.
var chunkCopies = sync.Pool{New: func() any { return new([]byte) }}

func newPutter(st *Store) *putter {
	p := &putter{st: st, ch: make(chan []byte, putQueue), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for b := range p.ch {
			if p.err == nil {
				ref, wrote, err := p.st.Put(b)
				if err != nil {
					p.err = err
					p.bad.Store(true)
				} else {
					p.refs = append(p.refs, ref)
					if wrote {
						p.newChunks++
						p.newBytes += int64(len(b))
					}
				}
			}
			chunkCopies.Put(&b)
		}
	}()
	return p
}

// put queues a copy of data for storing.
func (p *putter) put(data []byte) error {
	if p.bad.Load() {
		return errors.New("storing a chunk failed")
	}
	bp := chunkCopies.Get().(*[]byte)
	b := append((*bp)[:0], data...)
	p.ch <- b
	return nil
}

// close waits for the queued chunks and returns the first error.
func (p *putter) close() error {
	close(p.ch)
	<-p.done
	return p.err
}

// sampleBulk reads the first 64 KiB of a file and reports whether it
// looks incompressible (isBulk).
func sampleBulk(root *os.Root, name string) (bool, error) {
	f, err := root.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return isBulk(buf[:n]), nil
}

func inherit(s *string, prev string) {
	if *s == "" {
		*s = prev
	}
}

// Walk lists the regular files under path (a folder, or one file) in
// manifest order, in a root that keeps reads inside it, and the names of
// what it skipped (links, devices, pipes). The caller closes the root.
func Walk(path string) (*os.Root, []bundle.ArchiveFile, []string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, nil, err
	}
	dir, only := path, ""
	if !fi.IsDir() {
		dir, only = parentAndBase(path)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	var files []bundle.ArchiveFile
	var skipped []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if only != "" && p != "." && p != only {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			skipped = append(skipped, p)
			return nil
		}
		if err := bundle.ValidArchivePath(p); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := bundle.ArchiveFile{Path: p, Size: uint64(info.Size())}
		if info.Mode()&0o111 != 0 {
			f.Mode = bundle.ArchiveModeExec
		}
		files = append(files, f)
		if len(files) > bundle.MaxArchiveFiles {
			return &bundle.LimitError{What: "archive files", Got: uint64(len(files)), Limit: bundle.MaxArchiveFiles}
		}
		return nil
	})
	if err != nil {
		root.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	slices.SortFunc(files, func(a, b bundle.ArchiveFile) int { return cmp.Compare(a.Path, b.Path) })
	return root, files, skipped, nil
}

func parentAndBase(p string) (string, string) {
	for i := len(p) - 1; i >= 0; i-- {
		if os.IsPathSeparator(p[i]) {
			if i == 0 {
				return p[:1], p[1:]
			}
			return p[:i], p[i+1:]
		}
	}
	return ".", p
}

// runReader reads a run of files as one stream, hashing each into its
// ArchiveFile, and fails if a file's size changed since the walk.
type runReader struct {
	root  *os.Root
	files []bundle.ArchiveFile
	i     int
	cur   *os.File
	left  uint64
	h     hash.Hash
}

func (r *runReader) Read(p []byte) (int, error) {
	for {
		if r.i == len(r.files) {
			return 0, io.EOF
		}
		f := &r.files[r.i]
		if r.cur == nil {
			c, err := r.root.Open(f.Path)
			if err != nil {
				return 0, err
			}
			r.cur, r.left = c, f.Size
			r.h.Reset()
		}
		if r.left == 0 {
			var one [1]byte
			n, _ := r.cur.Read(one[:])
			r.cur.Close()
			r.cur = nil
			if n > 0 {
				return 0, fmt.Errorf("%s grew while it was read", f.Path)
			}
			copy(f.Hash[:], r.h.Sum(nil))
			r.i++
			continue
		}
		if uint64(len(p)) > r.left {
			p = p[:r.left]
		}
		n, err := r.cur.Read(p)
		r.h.Write(p[:n])
		r.left -= uint64(n)
		if n > 0 {
			return n, nil
		}
		if err == io.EOF {
			return 0, fmt.Errorf("%s shrank while it was read", f.Path)
		}
		if err != nil {
			return 0, err
		}
	}
}
