package archive

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math"

	"ferry/bundle"
)

// Profile is a chunk-size profile for content-defined chunking.
type Profile struct {
	Min, Avg, Max int
}

// Chunk-size profiles (docs/archive.md).
var (
	// ProfileText suits text and websites: small edits move little.
	ProfileText = Profile{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}
	// ProfileBulk suits large media: Add uses it for files of at least
	// bulkMinSize whose first 64 KiB look incompressible (see isBulk).
	ProfileBulk = Profile{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}
)

// bulkMinSize is the smallest file Add cuts with ProfileBulk.
const bulkMinSize = 4 << 20

// bulkEntropy is the Shannon entropy (bits per byte) of a file's first
// 64 KiB above which Add takes it for media or compressed data: text and
// HTML stay near 4.5-6, zstd/JPEG/MP4 above 7.9.
const bulkEntropy = 7.5

// isBulk reports whether sample, a file's first bytes, looks
// incompressible: its byte entropy is at least bulkEntropy.
func isBulk(sample []byte) bool {
	if len(sample) == 0 {
		return false
	}
	var hist [256]int
	for _, b := range sample {
		hist[b]++
	}
	n := float64(len(sample))
	h := 0.0
	for _, c := range hist {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h >= bulkEntropy
}

// gear is FastCDC's table of 256 random 64-bit values. It is fixed and
// public so that every node cuts the same content into the same chunks:
// entry i is the first 8 bytes (big-endian) of SHA-256("ferry gear" || i).
var gear = func() (t [256]uint64) {
	for i := range t {
		h := sha256.Sum256([]byte{'f', 'e', 'r', 'r', 'y', ' ', 'g', 'e', 'a', 'r', byte(i)})
		t[i] = binary.BigEndian.Uint64(h[:8])
	}
	return t
}()

// masks returns FastCDC's masks with normalization level 2: a harder one
// (log2(avg)+2 bits) before the average size, an easier one (log2(avg)-2
// bits) after. The bits are the top ones of the 64-bit gear hash, which
// depend on the last 64 bytes; the low bits would see only the last few
// bytes, too few to find boundaries in repetitive text.
func (p Profile) masks() (small, large uint64) {
	bits := 0
	for 1<<(bits+1) <= p.Avg {
		bits++
	}
	return ^uint64(0) << (64 - (bits + 2)), ^uint64(0) << (64 - (bits - 2))
}

// cut returns the length of the first chunk of data, which holds at
// least Max bytes unless it is the end of the stream.
func (p Profile) cut(data []byte, small, large uint64) int {
	if len(data) <= p.Min {
		return len(data)
	}
	n := min(len(data), p.Max)
	norm := min(n, p.Avg)
	var fp uint64
	i := p.Min
	for ; i < norm; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&small == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&large == 0 {
			return i + 1
		}
	}
	return n
}

// chunkStream cuts r into content-defined chunks (FastCDC with profile p)
// and hands each one to put, which must not keep the slice.
func chunkStream(r io.Reader, p Profile, put func(data []byte) error) error {
	small, large := p.masks()
	buf := make([]byte, 2*p.Max)
	var have, start int
	eof := false
	for {
		if !eof && have-start < p.Max {
			have = copy(buf, buf[start:have])
			start = 0
			n, err := io.ReadFull(r, buf[have:])
			have += n
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				eof = true
			} else if err != nil {
				return err
			}
		}
		if start == have {
			return nil
		}
		k := p.cut(buf[start:have], small, large)
		if err := put(buf[start : start+k]); err != nil {
			return err
		}
		start += k
	}
}

// chunkRef returns the reference to data.
func chunkRef(data []byte) bundle.ArchiveChunkRef {
	return bundle.ArchiveChunkRef{Hash: sha256.Sum256(data), Size: uint32(len(data))}
}
