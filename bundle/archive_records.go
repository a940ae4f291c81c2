package bundle

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"
)

// Archive record types. The values are wire constants, pinned by a golden
// test; see docs/archive.md.
const (
	// RecordArchiveChunk holds the raw bytes of one archive chunk; its
	// address is the SHA-256 of those bytes.
	RecordArchiveChunk RecordType = 0x10
	// RecordArchiveManifest holds one signed [ArchiveManifest].
	RecordArchiveManifest RecordType = 0x11
)

// ArchiveManifestMagic starts every encoded [ArchiveManifest]; its last
// byte is the format version.
const ArchiveManifestMagic = "FERRYAM\x01"

// Archive manifest limits: a manifest over any of them is refused before
// memory of that size is allocated.
const (
	MaxArchiveFiles     = 1 << 20   // files in one snapshot
	MaxArchiveChunks    = 1 << 21   // chunks in one snapshot
	MaxArchiveChunkSize = 8 << 20   // one chunk, in bytes
	MaxArchiveItemSize  = 256 << 30 // all files of one snapshot, in bytes
	MaxArchiveTags      = 64
	maxArchiveTitle     = 1 << 10
	maxArchiveText      = 64 << 10
	maxArchiveShort     = 2 << 10
)

// File modes in a manifest: only regular files exist in an archive.
const (
	ArchiveModeFile uint8 = 0x00 // a regular file
	ArchiveModeExec uint8 = 0x01 // a regular, executable file
)

// ArchiveChunkRef names one chunk of a snapshot's content stream.
type ArchiveChunkRef struct {
	Hash [32]byte // SHA-256 of the chunk's bytes
	Size uint32
}

// ArchiveFile is one file of a snapshot. Its bytes are the next Size bytes
// of the snapshot's content stream (the chunks, concatenated, in order).
type ArchiveFile struct {
	Path string // see [ValidArchivePath]
	Mode uint8
	Size uint64
	Hash [32]byte // SHA-256 of the file's bytes
}

// ArchiveManifest is one signed snapshot of an archive item: its
// description and the list of paths → chunks. The files, in strictly
// ascending path order, cover the content stream exactly.
type ArchiveManifest struct {
	Item        [16]byte
	Version     uint64
	Created     time.Time // millisecond precision
	Origin      NodeID    // the node that signed the snapshot
	Title       string
	Description string
	Lang        string
	Source      string
	Tags        []string
	Chunks      []ArchiveChunkRef
	Files       []ArchiveFile
	Signature   [SignatureSize]byte
}

// Size returns the total size of the snapshot's files.
func (m *ArchiveManifest) Size() uint64 {
	var s uint64
	for _, f := range m.Files {
		s += f.Size
	}
	return s
}

// SignedBytes returns the encoding of the manifest without its signature.
func (m *ArchiveManifest) SignedBytes() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b := append([]byte(nil), ArchiveManifestMagic...)
	b = append(b, m.Item[:]...)
	b = binary.AppendUvarint(b, m.Version)
	b = binary.AppendUvarint(b, uint64(m.Created.UnixMilli()))
	b = append(b, m.Origin[:]...)
	for _, s := range []string{m.Title, m.Description, m.Lang, m.Source} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Tags)))
	for _, t := range m.Tags {
		b = appendString(b, t)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Chunks)))
	for _, c := range m.Chunks {
		b = append(b, c.Hash[:]...)
		b = binary.AppendUvarint(b, uint64(c.Size))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Files)))
	for _, f := range m.Files {
		b = appendString(b, f.Path)
		b = append(b, f.Mode)
		b = binary.AppendUvarint(b, f.Size)
		b = append(b, f.Hash[:]...)
	}
	return b, nil
}

// AppendBinary appends the signed manifest's encoding to b.
func (m *ArchiveManifest) AppendBinary(b []byte) ([]byte, error) {
	sb, err := m.SignedBytes()
	if err != nil {
		return b, err
	}
	return append(append(b, sb...), m.Signature[:]...), nil
}

// Sign sets Origin to key's public key and signs the manifest.
func (m *ArchiveManifest) Sign(key ed25519.PrivateKey) error {
	m.Origin = NodeID(key.Public().(ed25519.PublicKey))
	sb, err := m.SignedBytes()
	if err != nil {
		return err
	}
	copy(m.Signature[:], ed25519.Sign(key, sb))
	return nil
}

// ErrManifestSignature means a manifest's signature does not verify
// against its origin.
var ErrManifestSignature = errors.New("bundle: archive manifest signature does not verify")

// Verify checks the signature against Origin.
func (m *ArchiveManifest) Verify() error {
	sb, err := m.SignedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(m.Origin.PublicKey(), sb, m.Signature[:]) {
		return ErrManifestSignature
	}
	return nil
}

// check enforces the rules ParseArchiveManifest enforces, so that nothing
// is written that no node would read.
func (m *ArchiveManifest) check() error {
	fe := func(reason string, args ...any) error {
		return &FormatError{Field: "archive manifest", Reason: fmt.Sprintf(reason, args...)}
	}
	if m.Created.UnixMilli() < 0 {
		return fe("created before 1970")
	}
	for _, s := range []struct {
		v   string
		max int
	}{{m.Title, maxArchiveTitle}, {m.Description, maxArchiveText}, {m.Lang, maxArchiveShort}, {m.Source, maxArchiveShort}} {
		if len(s.v) > s.max || !utf8.ValidString(s.v) {
			return fe("text field too long or not UTF-8")
		}
	}
	if len(m.Tags) > MaxArchiveTags {
		return fe("%d tags, limit %d", len(m.Tags), MaxArchiveTags)
	}
	for _, t := range m.Tags {
		if len(t) > maxArchiveShort || !utf8.ValidString(t) {
			return fe("tag too long or not UTF-8")
		}
	}
	if len(m.Chunks) > MaxArchiveChunks {
		return &LimitError{What: "archive chunks", Got: uint64(len(m.Chunks)), Limit: MaxArchiveChunks}
	}
	if len(m.Files) > MaxArchiveFiles {
		return &LimitError{What: "archive files", Got: uint64(len(m.Files)), Limit: MaxArchiveFiles}
	}
	var chunked, filed uint64
	for _, c := range m.Chunks {
		if c.Size == 0 || c.Size > MaxArchiveChunkSize {
			return &LimitError{What: "archive chunk size", Got: uint64(c.Size), Limit: MaxArchiveChunkSize}
		}
		chunked += uint64(c.Size)
	}
	files := make(map[string]bool, len(m.Files))
	for i, f := range m.Files {
		if err := ValidArchivePath(f.Path); err != nil {
			return err
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return fe("paths not in strictly ascending order at %q", f.Path)
		}
		if f.Mode != ArchiveModeFile && f.Mode != ArchiveModeExec {
			return fe("file %q has mode 0x%02x: only regular files are archived", f.Path, f.Mode)
		}
		if f.Size > MaxArchiveItemSize-filed {
			return &LimitError{What: "archive item size", Got: filed + f.Size, Limit: MaxArchiveItemSize}
		}
		filed += f.Size
		files[f.Path] = true
	}
	for _, f := range m.Files {
		for d := f.Path; ; {
			i := strings.LastIndexByte(d, '/')
			if i < 0 {
				break
			}
			d = d[:i]
			if files[d] {
				return fe("%q is both a file and a folder", d)
			}
		}
	}
	if filed != chunked {
		return fe("files declare %d bytes, chunks hold %d", filed, chunked)
	}
	return nil
}

// windowsReserved are device names Windows opens instead of files, with
// any extension.
var windowsReserved = map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}

func init() {
	for _, p := range []string{"COM", "LPT"} {
		for _, d := range "0123456789¹²³" {
			windowsReserved[p+string(d)] = true
		}
	}
}

// ValidArchivePath reports why p cannot name a file of an archive item, or
// nil: it must be a slash-separated relative path that stays inside the
// item's root on every system ferry runs on: [fs.ValidPath] (no "..", no
// leading "/", no empty or "." elements), no backslash, colon, control
// or Windows-forbidden character, no element ending in a dot or space, no
// Windows device name (CON, NUL, COM1, LPT1, ... with any extension).
func ValidArchivePath(p string) error {
	bad := func(why string) error {
		return &FormatError{Field: "archive path", Reason: fmt.Sprintf("%q: %s", p, why)}
	}
	if len(p) > MaxPathLen {
		return bad("longer than 1024 bytes")
	}
	if !utf8.ValidString(p) {
		return bad("not UTF-8")
	}
	if p == "." || !fs.ValidPath(p) {
		return bad("not a relative path inside the item (absolute, empty, '.' or '..' element)")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`\:*?"<>|`, r) {
			return bad("holds a control or Windows-forbidden character")
		}
	}
	for el := range strings.SplitSeq(p, "/") {
		if strings.HasSuffix(el, ".") || strings.HasSuffix(el, " ") {
			return bad("an element ends in a dot or space")
		}
		base, _, _ := strings.Cut(el, ".")
		if windowsReserved[strings.ToUpper(strings.TrimRight(base, " "))] {
			return bad("a Windows device name")
		}
	}
	return nil
}

// ParseArchiveManifest decodes a signed manifest. It refuses, with a
// *FormatError or *LimitError, any encoding that is not canonical, any
// count the remaining bytes cannot hold (before allocating for it), and
// any manifest that breaks the rules of [ArchiveManifest]. It does not
// verify the signature: call Verify.
func ParseArchiveManifest(b []byte) (*ArchiveManifest, error) {
	d := &manifestDecoder{decoder{b: b, field: "archive manifest"}}
	if len(b) < len(ArchiveManifestMagic) || string(b[:len(ArchiveManifestMagic)]) != ArchiveManifestMagic {
		return nil, &FormatError{Field: "archive manifest", Reason: "bad magic or unknown version"}
	}
	d.b = b[len(ArchiveManifestMagic):]
	m := &ArchiveManifest{}
	copy(m.Item[:], d.bytes(16))
	m.Version = d.uvarint()
	ms := d.uvarint()
	if ms > 1<<53 {
		d.fail("created time out of range")
	}
	m.Created = time.UnixMilli(int64(ms)).UTC()
	copy(m.Origin[:], d.bytes(32))
	m.Title = d.string(maxArchiveTitle)
	m.Description = d.string(maxArchiveText)
	m.Lang = d.string(maxArchiveShort)
	m.Source = d.string(maxArchiveShort)
	if n := d.count(MaxArchiveTags, 1, "archive tags"); n > 0 {
		m.Tags = make([]string, n)
		for i := range m.Tags {
			m.Tags[i] = d.string(maxArchiveShort)
		}
	}
	if n := d.count(MaxArchiveChunks, 33, "archive chunks"); n > 0 {
		m.Chunks = make([]ArchiveChunkRef, n)
		for i := range m.Chunks {
			copy(m.Chunks[i].Hash[:], d.bytes(32))
			s := d.uvarint()
			if s > MaxArchiveChunkSize {
				d.limit("archive chunk size", s, MaxArchiveChunkSize)
			}
			m.Chunks[i].Size = uint32(s)
		}
	}
	if n := d.count(MaxArchiveFiles, 35, "archive files"); n > 0 {
		m.Files = make([]ArchiveFile, n)
		for i := range m.Files {
			f := &m.Files[i]
			f.Path = d.string(MaxPathLen)
			if m := d.bytes(1); m != nil {
				f.Mode = m[0]
			}
			f.Size = d.uvarint()
			copy(f.Hash[:], d.bytes(32))
		}
	}
	copy(m.Signature[:], d.bytes(SignatureSize))
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	if m.Created.UnixMilli() != int64(ms) {
		return nil, &FormatError{Field: "archive manifest", Reason: "created time out of range"}
	}
	return m, nil
}

// manifestDecoder reads a manifest; the first error sticks. It is the
// record decoder of message.go with the manifest's own limits.
type manifestDecoder struct {
	decoder
}

func (d *manifestDecoder) limit(what string, got, lim uint64) {
	if d.err == nil {
		d.err = &LimitError{What: what, Got: got, Limit: lim}
	}
}

// count reads a count and refuses it if it is over max or if the bytes
// left cannot hold that many entries of at least minSize bytes each.
func (d *manifestDecoder) count(max, minSize uint64, what string) uint64 {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > max {
		d.limit(what, n, max)
		return 0
	}
	if n > uint64(len(d.b))/minSize {
		d.fail(fmt.Sprintf("declares %d %s, more than its %d remaining bytes can hold", n, what, len(d.b)))
		return 0
	}
	return n
}

func (d *manifestDecoder) string(max int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) {
		d.limit("archive manifest string", n, uint64(max))
		return ""
	}
	return string(d.bytes(int(n)))
}
