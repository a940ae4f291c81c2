package bundle

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// RecordTransfer opens the part of a file transfer that a bundle carries:
// one [TransferHeader], then the transfer's files of this part as
// RecordFile records. The value is a wire constant.
const RecordTransfer RecordType = 0x05

// Transfer bounds.
const (
	MaxTransferName  = 255     // bytes in a transfer's name
	MaxTransferNote  = 1 << 10 // bytes in its note
	MaxTransferFiles = 1 << 20 // files in one transfer
	MaxTransferParts = 1 << 16 // bundles of one transfer
	// MaxTransferPartFiles bounds the files of one part (one bundle): a
	// receiver keeps a part's file list until the part has verified.
	MaxTransferPartFiles = 1 << 14
	MaxTransferBytes     = 1 << 40 // bytes of one transfer, all parts
	maxTransferHdr       = 16 + 2 + MaxTransferName + 4*10 + 2 + MaxTransferNote
)

// TransferHeader describes a file transfer, and the part of it that one
// bundle carries. Every bundle of a transfer repeats the ID, name and
// totals, so that the receiver can file any part it gets first.
type TransferHeader struct {
	ID    [16]byte // random, chosen by the sender
	Name  string   // the transfer's name: a folder name, no "/"
	Files uint64   // files in the whole transfer
	Bytes uint64   // bytes of those files
	Part  uint64   // this bundle's part, from 1
	Parts uint64   // bundles in the transfer
	Note  string   // optional text from the sender
}

// AppendBinary appends the header's encoding to b.
func (t *TransferHeader) AppendBinary(b []byte) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	b = append(b, t.ID[:]...)
	b = appendString(b, t.Name)
	b = binary.AppendUvarint(b, t.Files)
	b = binary.AppendUvarint(b, t.Bytes)
	b = binary.AppendUvarint(b, t.Part)
	b = binary.AppendUvarint(b, t.Parts)
	return appendString(b, t.Note), nil
}

// ValidTransferName reports whether name can name a transfer: 1 to
// MaxTransferName bytes of UTF-8, one path element (no "/" or "\"), not
// "." or "..", no control characters.
func ValidTransferName(name string) bool {
	if name == "" || len(name) > MaxTransferName || !utf8.ValidString(name) || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '/' || r == '\\' })
}

func (t *TransferHeader) check() error {
	bad := func(reason string) error { return &FormatError{Field: "transfer header", Reason: reason} }
	switch {
	case !ValidTransferName(t.Name):
		return bad(fmt.Sprintf("name is empty, longer than %d bytes, not UTF-8 or not one folder name", MaxTransferName))
	case len(t.Note) > MaxTransferNote || !utf8.ValidString(t.Note):
		return bad(fmt.Sprintf("note longer than %d bytes or not UTF-8", MaxTransferNote))
	case t.Files > MaxTransferFiles:
		return &LimitError{What: "transfer files", Got: t.Files, Limit: MaxTransferFiles}
	case t.Bytes > MaxTransferBytes:
		return &LimitError{What: "transfer bytes", Got: t.Bytes, Limit: MaxTransferBytes}
	case t.Parts > MaxTransferParts:
		return &LimitError{What: "transfer parts", Got: t.Parts, Limit: MaxTransferParts}
	case t.Part == 0 || t.Part > t.Parts:
		return bad(fmt.Sprintf("part %d of %d", t.Part, t.Parts))
	}
	return nil
}

// ParseTransferHeader decodes a RecordTransfer body.
func ParseTransferHeader(b []byte) (*TransferHeader, error) {
	if len(b) > maxTransferHdr {
		return nil, &LimitError{What: "transfer header", Got: uint64(len(b)), Limit: maxTransferHdr}
	}
	d := decoder{b: b, field: "transfer header"}
	t := &TransferHeader{}
	copy(t.ID[:], d.bytes(16))
	t.Name = d.string(MaxTransferName)
	t.Files = d.uvarint()
	t.Bytes = d.uvarint()
	t.Part = d.uvarint()
	t.Parts = d.uvarint()
	t.Note = d.string(MaxTransferNote)
	if err := d.end(); err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}
