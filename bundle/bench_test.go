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
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"ferry/bench/packtree"
	"ferry/bundle"
)

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
	if err := packtree.Pack(ctx, w, root, maxRecord); err != nil {
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
	rd, err := bundle.NewReader(bufio.NewReaderSize(f, packtree.BufSize), bundle.Limits{})
	if err != nil {
		return err
	}
	rr, err := rd.Open(id)
	if err != nil {
		return err
	}
	defer rr.Close()
	return packtree.Open(ctx, rr, root)
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
			err = packtree.Open(t.Context(), rr, root)
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
