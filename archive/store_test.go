package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
)

// reopen forgets the store open on dir in this process and opens it
// again, as a new process would.
func reopen(t *testing.T, dir string) *Store {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	storesMu.Lock()
	if s := stores[abs]; s != nil {
		s.close()
		delete(stores, abs)
	}
	storesMu.Unlock()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testChunk(seed uint64, i int) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	b := make([]byte, 1+rng.IntN(20<<10))
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return b
}

// putChunks puts n test chunks of seed, each new, without flushing.
func putChunks(t *testing.T, s *Store, seed uint64, n int) []bundle.ArchiveChunkRef {
	t.Helper()
	var refs []bundle.ArchiveChunkRef
	for i := range n {
		ref, wrote, err := s.Put(testChunk(seed, i))
		if err != nil || !wrote {
			t.Fatalf("put %d: %v %v", i, wrote, err)
		}
		refs = append(refs, ref)
	}
	return refs
}

func TestStorePutGetReopen(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	refs := putChunks(t, s, 1, 200)
	// Pending chunks read back before any flush.
	for i, r := range refs {
		if b, err := s.Get(r, nil); err != nil || !bytes.Equal(b, testChunk(1, i)) {
			t.Fatalf("pending get %d: %v", i, err)
		}
	}
	if _, wrote, _ := s.Put(testChunk(1, 7)); wrote {
		t.Fatal("a pending chunk was written twice")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	for i, r := range refs {
		if !s.Has(r.Hash) {
			t.Fatalf("chunk %d lost", i)
		}
		if b, err := s.Get(r, nil); err != nil || !bytes.Equal(b, testChunk(1, i)) {
			t.Fatalf("get %d after reopen: %v", i, err)
		}
	}
	if _, wrote, _ := s.Put(testChunk(1, 7)); wrote {
		t.Fatal("a stored chunk was written twice")
	}
	if n, err := s.Check(); err != nil || n != 200 {
		t.Fatalf("check: %d %v", n, err)
	}
	// The second session appends to the same pack.
	if _, _, err := s.Put(testChunk(2, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(); st.Packs != 1 || st.Chunks != 201 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := s.Get(bundle.ArchiveChunkRef{Hash: sha256.Sum256([]byte("absent")), Size: 6}, nil); !errors.Is(err, ErrChunkMissing) {
		t.Fatalf("absent chunk: %v", err)
	}
}

func TestStoreDetectsDamage(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	a, _, _ := s.Put(bytes.Repeat([]byte("a"), 5000))
	b, _, _ := s.Put(bytes.Repeat([]byte("b"), 5000))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	pack := s.packPath(1)
	raw, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one bit in the middle of the first chunk's data.
	raw[len(packMagic)+entryHeader+2500] ^= 0x10
	if err := os.WriteFile(pack, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(a, nil); !errors.Is(err, ErrChunkDamaged) {
		t.Fatalf("bit flip: %v", err)
	}
	if _, err := s.Get(b, nil); err != nil {
		t.Fatalf("the other chunk: %v", err)
	}
	if _, err := s.Check(); !errors.Is(err, ErrChunkDamaged) {
		t.Fatalf("check missed the flip: %v", err)
	}
	// A pack cut short.
	if err := os.Truncate(pack, int64(len(raw)-100)); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if _, err := s.Get(b, nil); !errors.Is(err, ErrChunkDamaged) {
		t.Fatalf("truncated pack: %v", err)
	}
	// A wrong size in the reference.
	if _, err := s.Get(bundle.ArchiveChunkRef{Hash: b.Hash, Size: 4999}, nil); !errors.Is(err, ErrChunkDamaged) {
		t.Fatalf("size mismatch: %v", err)
	}
}

func TestStoreRebuildsIndexFromPacks(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir)
	refs := putChunks(t, s, 3, 50)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.close()
	for _, f := range []string{indexDBName, indexDBName + "-wal", indexDBName + "-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	// Debris after the last entry is not indexed.
	f, _ := os.OpenFile(filepath.Join(dir, "packs", "00000001.pack"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(bytes.Repeat([]byte{7}, 30))
	f.Close()
	s = reopen(t, dir)
	for i, r := range refs {
		if b, err := s.Get(r, nil); err != nil || !bytes.Equal(b, testChunk(3, i)) {
			t.Fatalf("chunk %d after reindex: %v", i, err)
		}
	}
	if st, _ := s.Stats(); st.Chunks != 50 {
		t.Fatalf("reindexed %d chunks", st.Chunks)
	}
	// The next writer cuts the debris and appends after the last chunk.
	r, _, err := s.Put(testChunk(3, 99))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir)
	if n, err := s.Check(); err != nil || n != 51 {
		t.Fatalf("check: %d %v", n, err)
	}
	if _, err := s.Get(r, nil); err != nil {
		t.Fatal(err)
	}
}

func TestStoreMigratesChunkFiles(t *testing.T) {
	dir := t.TempDir()
	var refs []bundle.ArchiveChunkRef
	for i := range 30 {
		data := testChunk(4, i)
		r := chunkRef(data)
		x := hex.EncodeToString(r.Hash[:])
		os.MkdirAll(filepath.Join(dir, x[:2]), 0o700)
		if err := os.WriteFile(filepath.Join(dir, x[:2], x), data, 0o600); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	// A damaged old chunk file is left where it is, not imported.
	bad := hex.EncodeToString(refs[0].Hash[:])
	bad = bad[:len(bad)-1] + "0"
	if bad == hex.EncodeToString(refs[0].Hash[:]) {
		bad = bad[:len(bad)-1] + "1"
	}
	os.WriteFile(filepath.Join(dir, bad[:2], bad), []byte("not it"), 0o600)
	s := reopen(t, dir)
	for i, r := range refs {
		if b, err := s.Get(r, nil); err != nil || !bytes.Equal(b, testChunk(4, i)) {
			t.Fatalf("migrated chunk %d: %v", i, err)
		}
		x := hex.EncodeToString(r.Hash[:])
		if _, err := os.Stat(filepath.Join(dir, x[:2], x)); err == nil {
			t.Fatalf("old chunk file %d left behind", i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, bad[:2], bad)); err != nil {
		t.Fatalf("damaged old file: %v", err)
	}
}

func TestStoreReclaimsDeadPacksAndRotates(t *testing.T) {
	old := packLimit
	packLimit = 64 << 10
	defer func() { packLimit = old }()
	dir := t.TempDir()
	s := reopen(t, dir)
	refs := putChunks(t, s, 5, 40)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Stats()
	if st.Packs < 3 {
		t.Fatalf("40 chunks of ~10 KiB in 64 KiB packs made %d packs", st.Packs)
	}
	for _, id := range must(s.packIDs()) {
		if fi, _ := os.Stat(s.packPath(id)); fi.Size() > packLimit {
			t.Fatalf("pack %d is %d bytes", id, fi.Size())
		}
	}
	// A pack with nothing indexed (a writer that died before its first
	// flush) is removed by the next writer.
	dead := filepath.Join(dir, "packs", "00009999.pack")
	os.WriteFile(dead, []byte(packMagic+"half an entry"), 0o600)
	s = reopen(t, dir)
	if _, _, err := s.Put(testChunk(5, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Fatal("dead pack not reclaimed")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, r := range refs {
		if _, err := s.Get(r, nil); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestStoreHelperProcess is the writer TestStoreSurvivesSIGKILL kills: it
// puts chunks forever, flushing every few, and prints "ok HASH SIZE" for
// each chunk once Flush has returned.
func TestStoreHelperProcess(t *testing.T) {
	dir := os.Getenv("FERRY_STORE_HELPER")
	if dir == "" {
		t.Skip("helper process")
	}
	seed, _ := strconv.ParseUint(os.Getenv("FERRY_STORE_SEED"), 10, 64)
	flushBytes = 64 << 10 // some flushes inside Put too
	s, err := OpenStore(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	var batch []bundle.ArchiveChunkRef
	for i := 0; ; i++ {
		r, _, err := s.Put(testChunk(seed, i))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		batch = append(batch, r)
		if len(batch) == 7 {
			if err := s.Flush(); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
			for _, r := range batch {
				fmt.Fprintf(w, "ok %x %d\n", r.Hash, r.Size)
			}
			w.Flush()
			batch = batch[:0]
		}
	}
}

// TestStoreSurvivesSIGKILL kills two concurrent writers of one store at
// random moments, 12 times, and checks after each round that every chunk
// they reported flushed is there, that every indexed chunk reads back
// whole (nothing is indexed that was not written), and that the debris
// does not break the next writer.
func TestStoreSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	flushed := map[[32]byte]uint32{}
	for round := range 12 {
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for w := range 2 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), "FERRY_STORE_HELPER="+dir, fmt.Sprintf("FERRY_STORE_SEED=%d", round*2+w+100))
			out := &bytes.Buffer{}
			cmd.Stdout = out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, outs = append(cmds, cmd), append(outs, out)
		}
		time.Sleep(time.Duration(150+rng.IntN(400)) * time.Millisecond)
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
		for _, out := range outs {
			for line := range strings.Lines(out.String()) {
				f := strings.Fields(line)
				if len(f) == 3 && f[0] == "ok" {
					h, _ := hex.DecodeString(f[1])
					n, _ := strconv.Atoi(f[2])
					flushed[[32]byte(h)] = uint32(n)
				} else if len(f) > 0 && f[0] == "error" {
					t.Fatalf("round %d: helper: %s", round, line)
				}
			}
		}
		s := reopen(t, dir)
		for h, n := range flushed {
			if _, err := s.Get(bundle.ArchiveChunkRef{Hash: h, Size: n}, nil); err != nil {
				t.Fatalf("round %d: a flushed chunk: %v", round, err)
			}
		}
		if k, err := s.Check(); err != nil {
			t.Fatalf("round %d: after %d good chunks: %v", round, k, err)
		}
	}
	if len(flushed) == 0 {
		t.Fatal("the writers flushed nothing before being killed")
	}
	t.Logf("%d chunks flushed by writers killed 24 times", len(flushed))
}

func FuzzScanPack(f *testing.F) {
	var good []byte
	good = append(good, packMagic...)
	for _, d := range [][]byte{[]byte("hello"), bytes.Repeat([]byte{1}, 300)} {
		good = appendEntryHeader(good, sha256.Sum256(d), d)
		good = append(good, d...)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte(packMagic))
	f.Add([]byte("FERRYPK\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		again = append(again, packMagic...)
		end, err := scanPack(bytes.NewReader(b), func(h [32]byte, off int64, data []byte) error {
			if sha256.Sum256(data) != h || int(off) != len(again)+entryHeader {
				t.Fatalf("bad entry at %d", off)
			}
			again = appendEntryHeader(again, h, data)
			again = append(again, data...)
			return nil
		})
		if end > int64(len(b)) {
			t.Fatalf("end %d past %d bytes", end, len(b))
		}
		if err == nil && int64(len(b)) != end {
			t.Fatalf("clean scan stopped at %d of %d", end, len(b))
		}
		if err != nil && !errors.Is(err, errPackEnd) {
			t.Fatalf("unexpected error %v", err)
		}
		// The good prefix re-encodes to the same bytes.
		if end >= int64(len(packMagic)) && !bytes.Equal(again, b[:end]) {
			t.Fatal("re-encoding differs")
		}
	})
}
