// Package packtree packs a directory tree into a ferry bundle as RecordFile
// records and opens it again: the workload of the pack/open benchmarks
// (bench/pack_vs_pipeline.sh, go test -bench in package bundle). It is not
// ferry's archive format. Files are read ahead and written behind by a
// second goroutine, so that disk waits overlap compression and decryption;
// Open refuses paths that would escape its root (os.Root).
package packtree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"ferry/bundle"
)

// BufSize is the size of the buffers files are copied through.
const BufSize = 256 << 10

// maxFileHeaderSize bounds an encoded FileHeader: a path of MaxPathLen
// bytes with its length, then two uvarints.
const maxFileHeaderSize = 2 + bundle.MaxPathLen + 2*10

// Pack writes every regular file under root into w as RecordFile
// records, in lexical order: a FileHeader, then the file's bytes. A file
// of more than maxRecord bytes (header included) goes in several records,
// each naming its Offset. Links, devices and empty directories are
// skipped. A second goroutine reads the files ahead, so that waiting for
// the disk overlaps compression, as it does in a pipeline of processes.
func Pack(ctx context.Context, w *bundle.Writer, root string, maxRecord uint64) error {
	fr := startFileReader(ctx, root)
	defer fr.stop()
	var hdr []byte
	var fh bundle.FileHeader
	var recLeft uint64 // bytes the current record still takes
	for op := range fr.ops {
		if op.err != nil {
			return op.err
		}
		if op.name != "" {
			fh = bundle.FileHeader{Path: op.name, Size: op.size}
		}
		data := op.data
		for op.name != "" || len(data) > 0 {
			if recLeft == 0 {
				var err error
				if hdr, err = fh.AppendBinary(hdr[:0]); err != nil {
					return err
				}
				recLeft = min(fh.Size-fh.Offset, maxRecord-uint64(len(hdr)))
				if err := w.BeginRecord(bundle.RecordFile, uint64(len(hdr))+recLeft); err != nil {
					return err
				}
				if _, err := w.Write(hdr); err != nil {
					return err
				}
			}
			op.name = "" // an empty file's one record is written
			k := min(uint64(len(data)), recLeft)
			if _, err := w.Write(data[:k]); err != nil {
				return err
			}
			data, recLeft, fh.Offset = data[k:], recLeft-k, fh.Offset+k
		}
		fr.free <- op.data[:cap(op.data)]
	}
	return nil
}

// fileReader walks a tree and reads its regular files, in lexical order,
// in a goroutine of its own, through a few buffers that go round between
// the goroutines.
type fileReader struct {
	ops  chan readOp // closed when the walk ends
	free chan []byte
	quit chan struct{}
}

// readOp is a piece of a file. A file's first piece names it and gives
// its size; an error ends the walk.
type readOp struct {
	name string // slash-separated, relative to the root
	size uint64
	data []byte // a buffer from free, to be returned there
	err  error
}

// treeBuffers is how many buffers go round between the goroutines: one
// being filled, the others queued or being emptied.
const treeBuffers = 4

// errStopped ends a fileReader's walk when it is stopped.
var errStopped = errors.New("stopped")

func startFileReader(ctx context.Context, root string) *fileReader {
	fr := &fileReader{
		ops:  make(chan readOp, treeBuffers),
		free: make(chan []byte, treeBuffers),
		quit: make(chan struct{}),
	}
	for range treeBuffers {
		fr.free <- make([]byte, BufSize)
	}
	go fr.run(ctx, root)
	return fr
}

func (fr *fileReader) run(ctx context.Context, root string) {
	defer close(fr.ops)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return fr.readFile(p, filepath.ToSlash(rel))
	})
	if err != nil && err != errStopped {
		select {
		case fr.ops <- readOp{err: err}:
		case <-fr.quit:
		}
	}
}

// readFile reads the file at p, named name, into buffers and sends them.
func (fr *fileReader) readFile(p, name string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	op := readOp{name: name, size: uint64(fi.Size())}
	for left := op.size; op.name != "" || left > 0; op = (readOp{}) {
		select {
		case op.data = <-fr.free:
		case <-fr.quit:
			return errStopped
		}
		n := min(left, uint64(len(op.data)))
		if _, err := io.ReadFull(f, op.data[:n]); err != nil {
			return fmt.Errorf("pack %s: %w", name, err) // it shrank while it was read
		}
		op.data, left = op.data[:n], left-n
		select {
		case fr.ops <- op:
		case <-fr.quit:
			return errStopped
		}
	}
	return nil
}

// stop ends the walk, if it is not over, and waits for the goroutine.
func (fr *fileReader) stop() {
	close(fr.quit)
	for range fr.ops {
	}
}

// Open writes the files of rr's RecordFile records under root and
// skips other records. It refuses a path that would escape root, through
// ".." or through a symbolic link already in root, and bytes that do not
// fit their file. A second goroutine creates and writes the files, so that
// those system calls overlap decryption and decompression, as they do in
// a pipeline of processes.
func Open(ctx context.Context, rr *bundle.Records, root string) (err error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	fw := startFileWriter(r)
	defer func() {
		if werr := fw.stop(); err == nil {
			err = werr
		}
	}()
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.Type != bundle.RecordFile {
			continue
		}
		if err := openFile(rr, rec, fw); err != nil {
			return err
		}
	}
}

// openFile reads one RecordFile record and hands its file's bytes to fw.
func openFile(rr *bundle.Records, rec bundle.Record, fw *fileWriter) error {
	buf := <-fw.free
	head := buf[:min(rec.Size, maxFileHeaderSize)]
	if _, err := io.ReadFull(rr, head); err != nil {
		return err
	}
	fh, hn, err := bundle.ParseFileHeader(head)
	if err != nil {
		return err
	}
	name := filepath.FromSlash(fh.Path)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("open: path %q escapes the root", fh.Path)
	}
	if rec.Size-uint64(hn) > fh.Size-fh.Offset {
		return fmt.Errorf("open %s: %d bytes at offset %d overflow its size %d", fh.Path, rec.Size-uint64(hn), fh.Offset, fh.Size)
	}
	op := writeOp{name: name, flag: os.O_WRONLY | os.O_CREATE, off: int64(fh.Offset)}
	if fh.Offset == 0 {
		op.flag |= os.O_TRUNC
	}
	// The file's bytes read along with the header come first.
	n := copy(buf, head[hn:])
	left := rec.Size - uint64(len(head))
	for {
		k := int(min(left, uint64(len(buf)-n)))
		if _, err := io.ReadFull(rr, buf[n:n+k]); err != nil {
			return fmt.Errorf("open %s: %w", fh.Path, err)
		}
		left -= uint64(k)
		op.data, op.end = buf[:n+k], left == 0
		fw.ops <- op
		if left == 0 {
			return nil
		}
		op, buf, n = writeOp{}, <-fw.free, 0
	}
}

// fileWriter creates and writes files in a goroutine of its own, in the
// order of its ops, through a few buffers that go round between the
// goroutines. After its first error it only hands buffers back, and stop
// returns that error.
type fileWriter struct {
	ops  chan writeOp
	free chan []byte
	done chan error
}

// writeOp opens a file when name is set, writes data to it, and closes it
// when end is set.
type writeOp struct {
	name string // relative to the root
	flag int
	off  int64
	data []byte // a buffer from free, returned there once written
	end  bool
}

func startFileWriter(root *os.Root) *fileWriter {
	fw := &fileWriter{
		ops:  make(chan writeOp, treeBuffers),
		free: make(chan []byte, treeBuffers),
		done: make(chan error, 1),
	}
	for range treeBuffers {
		fw.free <- make([]byte, BufSize)
	}
	go fw.run(&dirCache{root: root})
	return fw
}

func (fw *fileWriter) run(dirs *dirCache) {
	var f *os.File
	var err error
	for op := range fw.ops {
		if err == nil && op.name != "" {
			if f, err = dirs.openFile(op.name, op.flag); err == nil && op.off > 0 {
				_, err = f.Seek(op.off, io.SeekStart)
			}
		}
		if err == nil {
			_, err = f.Write(op.data)
		}
		if op.end && f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			f = nil
		}
		fw.free <- op.data[:cap(op.data)]
	}
	if f != nil {
		f.Close()
	}
	dirs.close()
	fw.done <- err
}

// stop waits for the ops sent so far and returns the first error.
func (fw *fileWriter) stop() error {
	close(fw.ops)
	return <-fw.done
}

// dirCache opens files under a root and keeps the directory of the last
// one open: files come in walk order, so most share their directory with
// the file before.
type dirCache struct {
	root *os.Root
	name string   // the open directory, relative to root
	dir  *os.Root // nil until the first file
}

// openFile opens name, relative to the root, making its directory.
func (c *dirCache) openFile(name string, flag int) (*os.File, error) {
	if d := filepath.Dir(name); c.dir == nil || d != c.name {
		c.close()
		if err := c.root.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		dir, err := c.root.OpenRoot(d)
		if err != nil {
			return nil, err
		}
		c.dir, c.name = dir, d
	}
	return c.dir.OpenFile(filepath.Base(name), flag, 0o644)
}

func (c *dirCache) close() {
	if c.dir != nil {
		c.dir.Close()
		c.dir = nil
	}
}
