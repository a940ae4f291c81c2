package bundle

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// RecordAttachment holds a file that goes with a message of the same
// bundle: an [AttachmentHeader], then the file's bytes to the end of the
// record. The value is a wire constant.
const RecordAttachment RecordType = 0x04

// Attachment bounds.
const (
	// MaxAttachmentSize bounds one attached file: it travels in one record,
	// under DefaultMaxRecordSize with room for the header.
	MaxAttachmentSize = 50 << 20
	// MaxAttachmentName bounds the file's name, in bytes.
	MaxAttachmentName = 255
	// MaxAttachmentType bounds the file's media type, in bytes.
	MaxAttachmentType = 127
	// MaxAttachmentHeader bounds an encoded AttachmentHeader: a reader
	// needs at most this many bytes of a record to parse it.
	MaxAttachmentHeader = 10 + 10 + 32 + 2 + MaxAttachmentName + 1 + MaxAttachmentType
)

// AttachmentHeader opens the body of a RecordAttachment. The file belongs
// to the message numbered Seq of the bundle's source, which comes earlier
// in the same bundle.
type AttachmentHeader struct {
	Seq  uint64   // the message's number at the bundle's source
	Size uint64   // the file's size; exactly that many bytes follow the header
	Hash [32]byte // SHA-256 of the file's bytes: the receiver checks it
	Name string   // the file's name, as the sender showed it; the receiver cleans it
	Type string   // its media type, possibly empty
}

// AppendBinary appends the header's encoding to b.
func (a *AttachmentHeader) AppendBinary(b []byte) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, a.Seq)
	b = binary.AppendUvarint(b, a.Size)
	b = append(b, a.Hash[:]...)
	b = appendString(b, a.Name)
	return appendString(b, a.Type), nil
}

func (a *AttachmentHeader) check() error {
	if a.Size > MaxAttachmentSize {
		return &LimitError{What: "attachment size", Got: a.Size, Limit: MaxAttachmentSize}
	}
	if a.Name == "" || len(a.Name) > MaxAttachmentName || !utf8.ValidString(a.Name) {
		return &FormatError{Field: "attachment name", Reason: fmt.Sprintf("empty, longer than %d bytes or not UTF-8", MaxAttachmentName)}
	}
	if len(a.Type) > MaxAttachmentType || !utf8.ValidString(a.Type) {
		return &FormatError{Field: "attachment type", Reason: fmt.Sprintf("longer than %d bytes or not UTF-8", MaxAttachmentType)}
	}
	return nil
}

// ParseAttachmentHeader decodes the header at the start of a
// RecordAttachment body (b may hold only its first MaxAttachmentHeader
// bytes) and returns how many bytes it took.
func ParseAttachmentHeader(b []byte) (*AttachmentHeader, int, error) {
	d := decoder{b: b, field: "attachment header"}
	a := &AttachmentHeader{}
	a.Seq = d.uvarint()
	a.Size = d.uvarint()
	copy(a.Hash[:], d.bytes(32))
	a.Name = d.string(MaxAttachmentName)
	a.Type = d.string(MaxAttachmentType)
	if d.err != nil {
		return nil, 0, d.err
	}
	if err := a.check(); err != nil {
		return nil, 0, err
	}
	return a, len(b) - len(d.b), nil
}
