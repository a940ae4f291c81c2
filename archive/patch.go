package archive

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"sort"

	"github.com/klauspost/compress/zstd"

	"ferry/bundle"
)

// "Patch-from": a file whose previous version the peer provably holds
// travels as a zstd frame that uses that version as a raw dictionary, and
// a new manifest travels compressed against the previous manifest. See
// docs/archive.md, "Deltas".

// patchDictID is the dictionary ID written in every patch frame.
const patchDictID = 1

// Window bounds of patch frames: the window covers dictionary and output.
const (
	minPatchWindow = 1 << 20
	maxPatchWindow = 128 << 20
)

func patchWindow(n int) int {
	w := 1 << bits.Len(uint(max(n, 1)-1))
	return min(max(w, minPatchWindow), maxPatchWindow)
}

// encodeAgainst compresses src with dict (may be empty) as a raw zstd
// dictionary.
func encodeAgainst(dict, src []byte) ([]byte, error) {
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(patchWindow(len(dict) + len(src))), zstd.WithEncoderCRC(false)}
	if len(dict) > 0 {
		opts = append(opts, zstd.WithEncoderDictRaw(patchDictID, dict))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("archive: patch encoder: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(src, nil), nil
}

// decodeAgainst decodes one frame made by encodeAgainst, refusing any
// output longer than limit bytes, and any window larger than the one
// encodeAgainst picks for that dictionary and output (the decoder caps
// its window at its output limit: it must allow that window).
func decodeAgainst(dict, frame []byte, limit int) ([]byte, error) {
	win := patchWindow(len(dict) + limit)
	opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(uint64(win)),
		zstd.WithDecoderMaxMemory(uint64(max(limit, win)))}
	if len(dict) > 0 {
		opts = append(opts, zstd.WithDecoderDictRaw(patchDictID, dict))
	}
	dec, err := zstd.NewReader(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("archive: patch decoder: %w", err)
	}
	defer dec.Close()
	var dst []byte
	if limit <= bundle.MaxArchivePatchFile {
		dst = make([]byte, 0, limit)
	}
	out, err := dec.DecodeAll(frame, dst)
	if err == nil && len(out) > limit {
		err = zstd.ErrDecoderSizeExceeded
	}
	if err != nil {
		return nil, &bundle.FormatError{Field: "archive patch", Reason: err.Error()}
	}
	return out, nil
}

// snapshotReader reads any range of a snapshot's content stream, and any
// of its files, from the chunk store.
type snapshotReader struct {
	st       *Store
	m        *bundle.ArchiveManifest
	chunkOff []uint64 // chunkOff[i] = stream offset of chunk i; one more entry: the end
	fileOff  []uint64
	cur      int // index of the chunk in buf, or -1
	buf      []byte
}

func newSnapshotReader(st *Store, m *bundle.ArchiveManifest) *snapshotReader {
	r := &snapshotReader{st: st, m: m, cur: -1}
	r.chunkOff = make([]uint64, len(m.Chunks)+1)
	for i, c := range m.Chunks {
		r.chunkOff[i+1] = r.chunkOff[i] + uint64(c.Size)
	}
	r.fileOff = make([]uint64, len(m.Files)+1)
	for i, f := range m.Files {
		r.fileOff[i+1] = r.fileOff[i] + f.Size
	}
	return r
}

// readAt fills p with the stream's bytes from off.
func (r *snapshotReader) readAt(p []byte, off uint64) error {
	i := sort.Search(len(r.m.Chunks), func(i int) bool { return r.chunkOff[i+1] > off })
	for len(p) > 0 {
		if i >= len(r.m.Chunks) {
			return fmt.Errorf("archive: read past the end of the snapshot")
		}
		if r.cur != i {
			b, err := r.st.Get(r.m.Chunks[i], r.buf)
			if err != nil {
				r.cur = -1
				return err
			}
			r.buf, r.cur = b, i
		}
		n := copy(p, r.buf[off-r.chunkOff[i]:])
		p, off = p[n:], off+uint64(n)
		i++
	}
	return nil
}

// file returns the bytes of file i, checked against its hash.
func (r *snapshotReader) file(i int) ([]byte, error) {
	f := &r.m.Files[i]
	b := make([]byte, f.Size)
	if err := r.readAt(b, r.fileOff[i]); err != nil {
		return nil, err
	}
	if sha256.Sum256(b) != f.Hash {
		return nil, fmt.Errorf("%w: %s", ErrFileMismatch, f.Path)
	}
	return b, nil
}

// filesIn returns the range [lo, hi) of the files that overlap the stream
// range [a, b) with at least one byte.
func (r *snapshotReader) filesIn(a, b uint64) (int, int) {
	lo := sort.Search(len(r.m.Files), func(i int) bool { return r.fileOff[i+1] > a })
	hi := lo
	for hi < len(r.m.Files) && r.fileOff[hi] < b {
		hi++
	}
	return lo, hi
}

// Delta budget: the file patches of one delta record stay well under the
// bundle's 64 MiB record limit; beyond it, chunks travel whole.
var deltaPatchBudget = 32 << 20

// deltaPlan is what Send queues for a peer that holds a base snapshot.
type deltaPlan struct {
	raw     []bundle.ArchiveChunkRef // chunks that travel as chunk records
	rebuilt []bundle.ArchiveChunkRef // chunks the peer rebuilds from the delta
	record  []byte                   // the delta record
	patches int                      // files sent as patches against the base
	literal int                      // files sent whole
	bytes   int64                    // bytes of patches and literals
}

// planDelta encodes m against base, which the peer holds, for the chunks
// need (those of m the peer lacks, in stream order, each once): a chunk
// is rebuilt by the peer when every file it overlaps is in base (same
// hash), or small enough to travel as a patch against the base file of
// the same path, or whole; any other chunk travels raw.
func planDelta(st *Store, m, base *bundle.ArchiveManifest, baseBody, body []byte, need []bundle.ArchiveChunkRef) (*deltaPlan, error) {
	mr, br := newSnapshotReader(st, m), newSnapshotReader(st, base)
	byHash := make(map[[32]byte]int, len(base.Files))
	byPath := make(map[string]int, len(base.Files))
	for i, f := range base.Files {
		byHash[f.Hash] = i
		byPath[f.Path] = i
	}
	first := make(map[[32]byte]int, len(m.Chunks)) // first index of each chunk in m
	for i := len(m.Chunks) - 1; i >= 0; i-- {
		first[m.Chunks[i].Hash] = i
	}
	p := &deltaPlan{}
	payload := map[int]bundle.ArchiveFilePatch{}
	budget := deltaPatchBudget
	for _, c := range need {
		ci := first[c.Hash]
		lo, hi := mr.filesIn(mr.chunkOff[ci], mr.chunkOff[ci+1])
		var add []int
		ok := true
		for fi := lo; fi < hi && ok; fi++ {
			f := &m.Files[fi]
			_, inBase := byHash[f.Hash]
			_, sent := payload[fi]
			switch {
			case inBase && f.Size <= bundle.MaxArchivePatchFile, sent:
			case f.Size <= bundle.MaxArchivePatchFile:
				add = append(add, fi)
			default:
				ok = false
			}
		}
		var adds []bundle.ArchiveFilePatch
		cost := 0
		for _, fi := range add {
			if !ok {
				break
			}
			fp, err := p.encodeFile(mr, br, byPath, fi)
			if err != nil {
				return nil, err
			}
			adds = append(adds, fp)
			cost += len(fp.Data)
			ok = cost <= budget
		}
		if !ok {
			p.raw = append(p.raw, c)
			continue
		}
		for i, fi := range add {
			payload[fi] = adds[i]
			if adds[i].Kind == bundle.ArchivePatchZstd {
				p.patches++
			} else {
				p.literal++
			}
		}
		budget -= cost
		p.bytes += int64(cost)
		p.rebuilt = append(p.rebuilt, c)
	}
	zm, err := encodeAgainst(baseBody, body)
	if err != nil {
		return nil, err
	}
	d := &bundle.ArchiveDelta{Item: m.Item, Base: sha256.Sum256(baseBody), Manifest: zm}
	for fi, fp := range payload {
		fp.File = uint32(fi)
		d.Files = append(d.Files, fp)
	}
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].File < d.Files[j].File })
	p.record, err = d.AppendBinary(nil)
	return p, err
}

// encodeFile returns file fi of the new snapshot as a patch against the
// base file of the same path, or whole when that is no smaller.
func (p *deltaPlan) encodeFile(mr, br *snapshotReader, byPath map[string]int, fi int) (bundle.ArchiveFilePatch, error) {
	b, err := mr.file(fi)
	if err != nil {
		return bundle.ArchiveFilePatch{}, err
	}
	lit := bundle.ArchiveFilePatch{Kind: bundle.ArchivePatchLiteral, Data: b}
	bi, ok := byPath[mr.m.Files[fi].Path]
	if !ok || br.m.Files[bi].Size == 0 || br.m.Files[bi].Size > bundle.MaxArchivePatchFile {
		return lit, nil
	}
	dict, err := br.file(bi)
	if err != nil {
		return lit, err
	}
	z, err := encodeAgainst(dict, b)
	if err != nil {
		return lit, err
	}
	// A literal is compressed again by the bundle; a patch is not.
	if len(z) >= len(b)/2 && len(z) >= len(b)-64 {
		return lit, nil
	}
	return bundle.ArchiveFilePatch{Kind: bundle.ArchivePatchZstd, Base: uint32(bi), Data: z}, nil
}

// applyDeltaFiles rebuilds, from the delta's files and the base snapshot,
// the chunks of m that the store lacks and that the delta covers, and
// stores them. Every patched file must decode to its size and hash; every
// rebuilt chunk must hash to its name. Chunks it cannot rebuild (they
// travel as chunk records) are left for those.
func applyDeltaFiles(st *Store, m, base *bundle.ArchiveManifest, d *bundle.ArchiveDelta) error {
	mr, br := newSnapshotReader(st, m), newSnapshotReader(st, base)
	byHash := make(map[[32]byte]int, len(base.Files))
	for i, f := range base.Files {
		byHash[f.Hash] = i
	}
	payload := make(map[int]*bundle.ArchiveFilePatch, len(d.Files))
	for i := range d.Files {
		fp := &d.Files[i]
		if int(fp.File) >= len(m.Files) || (fp.Kind == bundle.ArchivePatchZstd && int(fp.Base) >= len(base.Files)) {
			return &bundle.FormatError{Field: "archive delta", Reason: fmt.Sprintf("file index %d or base index %d out of range", fp.File, fp.Base)}
		}
		payload[int(fp.File)] = fp
	}
	// fileBytes returns file fi of m, or false if the delta does not cover it.
	cached, cache := -1, []byte(nil)
	fileBytes := func(fi int) ([]byte, bool, error) {
		if fi == cached {
			return cache, true, nil
		}
		f := &m.Files[fi]
		var b []byte
		if fp := payload[fi]; fp != nil {
			switch fp.Kind {
			case bundle.ArchivePatchLiteral:
				b = fp.Data
			case bundle.ArchivePatchZstd:
				if base.Files[fp.Base].Size > bundle.MaxArchivePatchFile {
					return nil, false, &bundle.FormatError{Field: "archive delta", Reason: "patch against a base file over the patch size limit"}
				}
				dict, err := br.file(int(fp.Base))
				if err != nil {
					return nil, false, lacking(err)
				}
				if b, err = decodeAgainst(dict, fp.Data, int(f.Size)); err != nil {
					return nil, false, err
				}
			}
			if uint64(len(b)) != f.Size || sha256.Sum256(b) != f.Hash {
				return nil, false, &bundle.FormatError{Field: "archive delta", Reason: fmt.Sprintf("%s: the patch does not rebuild the file", f.Path)}
			}
		} else if bi, ok := byHash[f.Hash]; ok && f.Size <= bundle.MaxArchivePatchFile && base.Files[bi].Size == f.Size {
			var err error
			if b, err = br.file(bi); err != nil {
				return nil, false, lacking(err)
			}
		} else {
			return nil, false, nil
		}
		cached, cache = fi, b
		return b, true, nil
	}
	done := map[[32]byte]bool{}
	var chunk []byte
	for ci, c := range m.Chunks {
		if done[c.Hash] || st.Has(c.Hash) {
			continue
		}
		a, e := mr.chunkOff[ci], mr.chunkOff[ci+1]
		chunk = chunk[:0]
		covered := true
		lo, hi := mr.filesIn(a, e)
		for fi := lo; fi < hi; fi++ {
			b, ok, err := fileBytes(fi)
			if err != nil {
				return err
			}
			// (a base file this node lacks leaves ok false, err nil)
			if !ok {
				covered = false // it travels as a chunk record
				break
			}
			s, t := max(a, mr.fileOff[fi]), min(e, mr.fileOff[fi+1])
			chunk = append(chunk, b[s-mr.fileOff[fi]:t-mr.fileOff[fi]]...)
		}
		if !covered {
			continue
		}
		if uint64(len(chunk)) != e-a || sha256.Sum256(chunk) != c.Hash {
			return &bundle.FormatError{Field: "archive delta", Reason: fmt.Sprintf("rebuilt chunk %x does not match", c.Hash[:8])}
		}
		if _, _, err := st.Put(chunk); err != nil {
			return err
		}
		done[c.Hash] = true
	}
	return nil
}

// lacking turns a base chunk this node lacks or has lost into "not
// covered" (nil): the snapshot stays incomplete instead of failing the
// import.
func lacking(err error) error {
	if errors.Is(err, ErrChunkMissing) || errors.Is(err, ErrChunkDamaged) || errors.Is(err, ErrFileMismatch) {
		return nil
	}
	return err
}
