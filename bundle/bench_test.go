package bundle_test

// Pack and open benchmarks: a directory tree packed into one bundle as
// RecordFile records, and unpacked again, side by side with the
// `tar | zstd -3 -T1 | age` pipeline on the same data in the same run.
//
//	FERRY_BENCH_DATA=/tmp/ferrybench/mixed256 go test ./bundle -run '^$' -bench 'Pack|Open' -count 3
//
// The benchmarks skip unless FERRY_BENCH_DATA names a directory; the
// pipeline sub-benchmarks skip unless bash, tar, zstd and age are on PATH.
// bench/pack_vs_pipeline.sh makes the data set and measures whole processes
// (wall time with sync, peak RSS); docs/benchmarks.md has the figures.
//
// packTree and openTree, below, are test helpers, not ferry's archive
// format. bench/cmd/packbench, the program the script times, carries the
// same code: keep the two copies identical.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"ferry/bundle"
)

// treeBufSize is the size of the buffers files are copied through.
const treeBufSize = 256 << 10

// maxFileHeaderSize bounds an encoded FileHeader: a path of MaxPathLen
// bytes with its length, then two uvarints.
const maxFileHeaderSize = 2 + bundle.MaxPathLen + 2*10

// packTree writes every regular file under root into w as RecordFile
// records, in lexical order: a FileHeader, then the file's bytes. A file
// of more than maxRecord bytes (header included) goes in several records,
// each naming its Offset. Links, devices and empty directories are
// skipped. A second goroutine reads the files ahead, so that waiting for
// the disk overlaps compression, as it does in a pipeline of processes.
func packTree(ctx context.Context, w *bundle.Writer, root string, maxRecord uint64) error {
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
		fr.free <- make([]byte, treeBufSize)
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

// openTree writes the files of rr's RecordFile records under root and
// skips other records. It refuses a path that would escape root, through
// ".." or through a symbolic link already in root, and bytes that do not
// fit their file. A second goroutine creates and writes the files, so that
// those system calls overlap decryption and decompression, as they do in
// a pipeline of processes.
func openTree(ctx context.Context, rr *bundle.Records, root string) (err error) {
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
		fw.free <- make([]byte, treeBufSize)
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

// packTreeFile packs root into a new bundle at path, from src to dst.
func packTreeFile(ctx context.Context, path, root string, src, dst party, maxRecord uint64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := bundle.Header{Kind: bundle.KindArchive, Source: src.id, Dest: bundle.ToNode(dst.id), Seq: 1, Created: time.Now()}
	w, err := bundle.NewWriter(f, h, src.key, dst.age.Recipient())
	if err != nil {
		return 0, err
	}
	if err := packTree(ctx, w, root, maxRecord); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Size(), f.Close()
}

// openTreeFile verifies the bundle at path, decrypts it with id and writes
// its files under root.
func openTreeFile(ctx context.Context, path, root string, id age.Identity) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := bundle.NewReader(bufio.NewReaderSize(f, treeBufSize), bundle.Limits{})
	if err != nil {
		return err
	}
	rr, err := rd.Open(id)
	if err != nil {
		return err
	}
	defer rr.Close()
	return openTree(ctx, rr, root)
}

func TestPackOpenTree(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":          []byte("hello"),
		"empty":          {},
		"d/e/big.bin":    bytes.Repeat([]byte("0123456789"), 1000), // split into several records
		"d/exact.bin":    bytes.Repeat([]byte{7}, 200),
		"d/e/f/deep.htm": []byte("<p>deep</p>"),
	}
	for name, data := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	a, b := newParty(t), newParty(t)
	bundlePath := filepath.Join(t.TempDir(), "tree.bundle")
	if _, err := packTreeFile(t.Context(), bundlePath, src, a, b, 300); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := openTreeFile(t.Context(), bundlePath, dst, b.age); err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		got[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(files) {
		t.Errorf("opened %d files, want %d", len(got), len(files))
	}
	for name, data := range files {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: got %d bytes, want %d", name, len(got[name]), len(data))
		}
	}
}

func TestPackTreeStopsAtAnError(t *testing.T) {
	src := t.TempDir()
	// A name that is not UTF-8 has no FileHeader; the files after it keep
	// the reading goroutine busy when packTree gives up.
	names := []string{"0\xff"}
	for i := range 20 {
		names = append(names, fmt.Sprintf("f%02d", i))
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(src, name), bytes.Repeat([]byte("x"), 300<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := newParty(t), newParty(t)
	_, err := packTreeFile(t.Context(), filepath.Join(t.TempDir(), "tree.bundle"), src, a, b, bundle.DefaultMaxRecordSize)
	var fe *bundle.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want a *bundle.FormatError", err)
	}
}

func TestOpenTreeRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	a, b := newParty(t), newParty(t)
	for _, name := range []string{"../escape", "/abs", "link/escape"} {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			// Encoded by hand: FileHeader.AppendBinary refuses such paths.
			body := append([]byte{byte(len(name))}, name...)
			body = append(body, 1, 0, 'x')
			data := pack(t, a, b, map[bundle.RecordType][][]byte{bundle.RecordFile: {body}})
			root := t.TempDir()
			if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
			rd, err := bundle.NewReader(bytes.NewReader(data), bundle.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			rr, err := rd.Open(b.age)
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Close()
			err = openTree(t.Context(), rr, root)
			if err == nil {
				t.Fatalf("path %q: accepted", name)
			}
			if _, err := os.Stat(filepath.Join(outside, "escape")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("path %q: a file was written outside the root", name)
			}
		})
	}
}

// benchData returns the directory FERRY_BENCH_DATA names and the bytes of
// its regular files, or skips the benchmark.
func benchData(b *testing.B) (string, int64) {
	dir := os.Getenv("FERRY_BENCH_DATA")
	if dir == "" {
		b.Skip("set FERRY_BENCH_DATA to a directory to pack, e.g. the 256 MiB mixed set that bench/pack_vs_pipeline.sh makes")
	}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return dir, total
}

// pipelineTools skips b unless the tools of the reference pipeline are on PATH.
func pipelineTools(b *testing.B) {
	for _, tool := range []string{"bash", "tar", "zstd", "age"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not on PATH: apt-get install -y tar zstd age", tool)
		}
	}
}

// runScript runs a bash script with args as $1, $2, ...
func runScript(b *testing.B, script string, args ...string) {
	cmd := exec.Command("bash", append([]string{"-c", "set -euo pipefail; " + script, "bench"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
}

// flush writes dirty pages back, untimed, so that one iteration's
// writeback does not slow the next.
func flush(b *testing.B) {
	b.StopTimer()
	exec.Command("sync").Run()
	b.StartTimer()
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

const (
	pipelinePack = `tar -C "$1" -cf - . | zstd -3 -T1 -q -c | age -r "$2" > "$3"`
	pipelineOpen = `mkdir "$3" && age -d -i "$1" "$2" | zstd -d -q -c | tar -C "$3" -xf -`
)

// BenchmarkPack packs FERRY_BENCH_DATA into a bundle (ferry) and into
// tar | zstd -3 -T1 | age (pipeline). MB/s counts the data's bytes;
// bundle/data is the bundle's size over them. Neither side syncs inside
// the timer; dirty pages are written back between iterations, untimed.
// With -count, go test repeats ferry, then the pipeline: the script
// alternates them round by round, which suits a noisy machine better.
func BenchmarkPack(b *testing.B) {
	data, total := benchData(b)
	a, dst := newParty(b), newParty(b)
	b.Run("ferry", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "data.bundle")
		b.SetBytes(total)
		var size int64
		for b.Loop() {
			var err error
			if size, err = packTreeFile(b.Context(), out, data, a, dst, bundle.DefaultMaxRecordSize); err != nil {
				b.Fatal(err)
			}
			flush(b)
		}
		b.ReportMetric(float64(size)/float64(total), "bundle/data")
	})
	b.Run("pipeline", func(b *testing.B) {
		pipelineTools(b)
		out := filepath.Join(b.TempDir(), "data.tar.zst.age")
		b.SetBytes(total)
		for b.Loop() {
			runScript(b, pipelinePack, data, dst.age.Recipient().String(), out)
			flush(b)
		}
		b.ReportMetric(float64(fileSize(b, out))/float64(total), "bundle/data")
	})
}

// BenchmarkOpen unpacks what BenchmarkPack makes: ferry opens a bundle
// into a directory, the pipeline runs age -d | zstd -d | tar -x.
func BenchmarkOpen(b *testing.B) {
	data, total := benchData(b)
	a, dst := newParty(b), newParty(b)
	b.Run("ferry", func(b *testing.B) {
		dir := b.TempDir()
		in := filepath.Join(dir, "data.bundle")
		if _, err := packTreeFile(b.Context(), in, data, a, dst, bundle.DefaultMaxRecordSize); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		b.SetBytes(total)
		for b.Loop() {
			b.StopTimer()
			if err := os.RemoveAll(out); err != nil {
				b.Fatal(err)
			}
			if err := os.Mkdir(out, 0o755); err != nil {
				b.Fatal(err)
			}
			flush(b) // restarts the timer
			if err := openTreeFile(b.Context(), in, out, dst.age); err != nil {
				b.Fatal(err)
			}
			flush(b)
		}
	})
	b.Run("pipeline", func(b *testing.B) {
		pipelineTools(b)
		dir := b.TempDir()
		in, key := filepath.Join(dir, "data.tar.zst.age"), filepath.Join(dir, "key.txt")
		if err := os.WriteFile(key, []byte(dst.age.String()+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		runScript(b, pipelinePack, data, dst.age.Recipient().String(), in)
		out := filepath.Join(dir, "out")
		b.SetBytes(total)
		for b.Loop() {
			b.StopTimer()
			if err := os.RemoveAll(out); err != nil {
				b.Fatal(err)
			}
			flush(b)
			runScript(b, pipelineOpen, key, in, out)
			flush(b)
		}
	})
}
