package archive

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"ferry/bundle"
)

// Pack file format (docs/archive.md, "Chunk store"):
//
//	magic "FERRYPK\x01"                     8 bytes
//	entries, back to back:
//	  sha256 of data                        32 bytes
//	  size   uint32 big-endian (1 … 8 MiB)   4 bytes
//	  crc32c of data, big-endian             4 bytes
//	  data                                  size bytes
//
// A pack is only ever appended to. The index (which chunk is where) lives
// in the store's SQLite database and names a chunk only once the pack
// bytes holding it are durable; whatever follows the last indexed entry
// is debris from an interrupted write, harmless and reclaimed.
const (
	packMagic   = "FERRYPK\x01"
	entryHeader = 40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// appendEntryHeader appends the header of the pack entry holding data.
func appendEntryHeader(b []byte, h [32]byte, data []byte) []byte {
	b = append(b, h[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return binary.BigEndian.AppendUint32(b, crc(data))
}

// errPackEnd is returned by scanPack at the first entry that is not whole
// and valid: the rest of the pack is debris.
var errPackEnd = errors.New("archive: pack ends in a damaged or partial entry")

// scanPack reads a pack from r and calls fn for each whole entry whose
// size, CRC-32C and SHA-256 check, with the offset of its data; fn must
// not keep data. It returns the offset just past the last good entry.
// The first entry that is cut short or damaged ends the scan with
// errPackEnd (wrapped with the reason); a clean end of file returns nil.
func scanPack(r io.Reader, fn func(h [32]byte, off int64, data []byte) error) (int64, error) {
	var magic [len(packMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return 0, fmt.Errorf("%w: no header: %v", errPackEnd, err)
	}
	if string(magic[:]) != packMagic {
		return 0, fmt.Errorf("%w: bad magic %q", errPackEnd, magic[:])
	}
	end := int64(len(packMagic))
	var hdr [entryHeader]byte
	var buf []byte
	for {
		n, err := io.ReadFull(r, hdr[:])
		if err == io.EOF && n == 0 {
			return end, nil
		}
		if err != nil {
			return end, fmt.Errorf("%w at %d: header cut short", errPackEnd, end)
		}
		h := [32]byte(hdr[:32])
		size := binary.BigEndian.Uint32(hdr[32:36])
		sum := binary.BigEndian.Uint32(hdr[36:40])
		if size == 0 || size > bundle.MaxArchiveChunkSize {
			return end, fmt.Errorf("%w at %d: size %d", errPackEnd, end, size)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		data := buf[:size]
		if _, err := io.ReadFull(r, data); err != nil {
			return end, fmt.Errorf("%w at %d: data cut short", errPackEnd, end)
		}
		if crc(data) != sum || sha256.Sum256(data) != h {
			return end, fmt.Errorf("%w at %d: checksum", errPackEnd, end)
		}
		if err := fn(h, end+entryHeader, data); err != nil {
			return end, err
		}
		end += entryHeader + int64(size)
	}
}
