package bundle

import (
	"encoding/binary"
	"fmt"
)

// RecordArchiveDelta holds one [ArchiveDelta]: a new snapshot of an item
// encoded against a previous snapshot that the receiver holds ("patch-from").
const RecordArchiveDelta RecordType = 0x12

// ArchiveDeltaMagic starts every encoded [ArchiveDelta]; its last byte is
// the format version.
const ArchiveDeltaMagic = "FERRYAD\x01"

// MaxArchivePatchFile is the largest file a delta carries as a patch or a
// literal; larger files travel as chunks.
const MaxArchivePatchFile = 8 << 20

// Kinds of [ArchiveFilePatch].
const (
	// ArchivePatchLiteral: Data is the file's bytes.
	ArchivePatchLiteral uint8 = 0x00
	// ArchivePatchZstd: Data is one zstd frame that decodes to the file's
	// bytes with the base file's bytes as a raw dictionary (dictionary ID 1).
	ArchivePatchZstd uint8 = 0x01
)

// ArchiveDelta is a new snapshot of an item encoded against a base
// snapshot the receiver holds: the new manifest compressed with the base
// manifest as a zstd dictionary, and the bytes of the files the receiver
// needs to rebuild the chunks it lacks (those not sent as chunk records),
// each as a patch against a file of the base or as a literal.
type ArchiveDelta struct {
	Item [16]byte
	// Base is the SHA-256 of the base manifest's encoding.
	Base [32]byte
	// Manifest is one zstd frame that decodes, with the base manifest's
	// encoding as a raw dictionary (dictionary ID 1), to the encoding of
	// the new signed manifest.
	Manifest []byte
	// Files, in strictly ascending File order.
	Files []ArchiveFilePatch
}

// ArchiveFilePatch carries the bytes of one file of a delta's new snapshot.
type ArchiveFilePatch struct {
	File uint32 // index of the file in the new manifest
	Kind uint8  // ArchivePatchLiteral or ArchivePatchZstd
	Base uint32 // for ArchivePatchZstd: index of the dictionary file in the base manifest
	Data []byte
}

// AppendBinary appends the delta's encoding to b.
//
//	magic "FERRYAD\x01" | item 16 | base 32 | manifest: varint len, bytes |
//	nfiles varint | nfiles × { file varint, kind 1, [base varint if kind 1], data: varint len, bytes }
func (d *ArchiveDelta) AppendBinary(b []byte) ([]byte, error) {
	if err := d.check(); err != nil {
		return b, err
	}
	b = append(b, ArchiveDeltaMagic...)
	b = append(b, d.Item[:]...)
	b = append(b, d.Base[:]...)
	b = binary.AppendUvarint(b, uint64(len(d.Manifest)))
	b = append(b, d.Manifest...)
	b = binary.AppendUvarint(b, uint64(len(d.Files)))
	for _, f := range d.Files {
		b = binary.AppendUvarint(b, uint64(f.File))
		b = append(b, f.Kind)
		if f.Kind == ArchivePatchZstd {
			b = binary.AppendUvarint(b, uint64(f.Base))
		}
		b = binary.AppendUvarint(b, uint64(len(f.Data)))
		b = append(b, f.Data...)
	}
	return b, nil
}

func (d *ArchiveDelta) check() error {
	fe := func(reason string, args ...any) error {
		return &FormatError{Field: "archive delta", Reason: fmt.Sprintf(reason, args...)}
	}
	if len(d.Manifest) == 0 || len(d.Manifest) > DefaultMaxRecordSize {
		return fe("manifest of %d bytes", len(d.Manifest))
	}
	if len(d.Files) > MaxArchiveFiles {
		return &LimitError{What: "archive delta files", Got: uint64(len(d.Files)), Limit: MaxArchiveFiles}
	}
	for i, f := range d.Files {
		if i > 0 && f.File <= d.Files[i-1].File {
			return fe("files not in strictly ascending order at %d", f.File)
		}
		if f.File >= MaxArchiveFiles || f.Base >= MaxArchiveFiles {
			return &LimitError{What: "archive delta file index", Got: uint64(max(f.File, f.Base)), Limit: MaxArchiveFiles - 1}
		}
		switch f.Kind {
		case ArchivePatchLiteral:
			if f.Base != 0 {
				return fe("a literal names a base file")
			}
		case ArchivePatchZstd:
			if len(f.Data) == 0 {
				return fe("empty patch")
			}
		default:
			return fe("file %d has unknown kind 0x%02x", f.File, f.Kind)
		}
		if len(f.Data) > MaxArchivePatchFile {
			return &LimitError{What: "archive delta file data", Got: uint64(len(f.Data)), Limit: MaxArchivePatchFile}
		}
	}
	return nil
}

// ParseArchiveDelta decodes a delta. Like [ParseArchiveManifest] it
// refuses non-canonical encodings and counts the remaining bytes cannot
// hold, before allocating. The manifest inside is checked by the
// receiver once it has decompressed it against its base.
func ParseArchiveDelta(b []byte) (*ArchiveDelta, error) {
	if len(b) < len(ArchiveDeltaMagic) || string(b[:len(ArchiveDeltaMagic)]) != ArchiveDeltaMagic {
		return nil, &FormatError{Field: "archive delta", Reason: "bad magic or unknown version"}
	}
	d := &manifestDecoder{decoder{b: b[len(ArchiveDeltaMagic):], field: "archive delta"}}
	a := &ArchiveDelta{}
	copy(a.Item[:], d.bytes(16))
	copy(a.Base[:], d.bytes(32))
	a.Manifest = d.blob(DefaultMaxRecordSize)
	// An entry takes at least 3 bytes: index, kind, data length.
	if n := d.count(MaxArchiveFiles, 3, "archive delta files"); n > 0 {
		a.Files = make([]ArchiveFilePatch, n)
		for i := range a.Files {
			f := &a.Files[i]
			f.File = uint32(d.index())
			f.Kind = d.byte()
			if f.Kind == ArchivePatchZstd {
				f.Base = uint32(d.index())
			}
			f.Data = d.blob(MaxArchivePatchFile)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

func (d *manifestDecoder) index() uint64 {
	v := d.uvarint()
	if v >= MaxArchiveFiles {
		d.limit("archive delta file index", v, MaxArchiveFiles-1)
		return 0
	}
	return v
}

// blob reads a length-prefixed byte string of at most max bytes; the
// result aliases the input.
func (d *manifestDecoder) blob(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.limit("archive delta blob", n, uint64(max))
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errShort.Error())
		return nil
	}
	return d.bytes(int(n))
}
