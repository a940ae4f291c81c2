package bundle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"time"
	"unicode/utf8"
)

// Field bounds of the record bodies.
const (
	MaxNameLen   = 64       // a user or room name, in bytes
	MaxBodyLen   = 64 << 10 // a message text, in bytes
	MaxReasonLen = 256      // a receipt's failure reason, in bytes
	MaxPathLen   = 1024     // a file record's path, in bytes
	maxReceiptN  = 1 << 16  // message numbers in one receipt
)

// Message flags. Wire constants.
const (
	msgFlagRoom  = 0x01 // To names a room, not a user
	msgFlagReply = 0x02 // a MessageRef follows To
)

// Message is the body of a RecordMessage: one message from a user of the
// bundle's source node, to a user or a room of its destination.
type Message struct {
	Seq     uint64    // the source node's number for the message, from 1
	Created time.Time // kept to the millisecond, from 1970; the zero time is sent as 1970
	From    string    // user name at the source node
	To      string    // user or room name at the destination
	Room    bool      // To names a room
	ReplyTo *MessageRef
	Body    string
}

// MessageRef names a message anywhere: its source node and number.
type MessageRef struct {
	Node NodeID
	Seq  uint64
}

// AppendBinary appends the message's encoding to b.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	if err := checkName("from", m.From); err != nil {
		return nil, err
	}
	if err := checkName("to", m.To); err != nil {
		return nil, err
	}
	if len(m.Body) > MaxBodyLen || !utf8.ValidString(m.Body) {
		return nil, &FormatError{Field: "message body", Reason: "longer than 64 KiB or not UTF-8"}
	}
	var flags byte
	if m.Room {
		flags |= msgFlagRoom
	}
	if m.ReplyTo != nil {
		flags |= msgFlagReply
	}
	created, err := appendMillis("message time", m.Created)
	if err != nil {
		return nil, err
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendUvarint(b, created)
	b = appendString(b, m.From)
	b = appendString(b, m.To)
	if m.ReplyTo != nil {
		b = append(b, m.ReplyTo.Node[:]...)
		b = binary.AppendUvarint(b, m.ReplyTo.Seq)
	}
	return appendString(b, m.Body), nil
}

// ParseMessage decodes a RecordMessage body. Every byte must belong to the
// message.
func ParseMessage(b []byte) (*Message, error) {
	d := decoder{b: b, field: "message"}
	flags := d.byte()
	if flags&^(msgFlagRoom|msgFlagReply) != 0 {
		return nil, &FormatError{Field: "message", Reason: fmt.Sprintf("unknown flags 0x%02x", flags)}
	}
	m := &Message{Room: flags&msgFlagRoom != 0}
	m.Seq = d.uvarint()
	m.Created = d.millis()
	m.From = d.string(MaxNameLen)
	m.To = d.string(MaxNameLen)
	if flags&msgFlagReply != 0 {
		ref := &MessageRef{}
		copy(ref.Node[:], d.bytes(32))
		ref.Seq = d.uvarint()
		m.ReplyTo = ref
	}
	m.Body = d.string(MaxBodyLen)
	if err := d.end(); err != nil {
		return nil, err
	}
	if err := checkName("from", m.From); err != nil {
		return nil, err
	}
	if err := checkName("to", m.To); err != nil {
		return nil, err
	}
	return m, nil
}

// ReceiptState is what a receipt reports. Wire constants.
type ReceiptState uint8

// Receipt states.
const (
	ReceiptDelivered ReceiptState = 0x01 // applied at the destination node
	ReceiptRead      ReceiptState = 0x02 // seen by the recipient
	ReceiptFailed    ReceiptState = 0x03 // refused at the destination; see Reason
)

func (s ReceiptState) String() string {
	switch s {
	case ReceiptDelivered:
		return "delivered"
	case ReceiptRead:
		return "read"
	case ReceiptFailed:
		return "failed"
	}
	return fmt.Sprintf("state(0x%02x)", uint8(s))
}

// Receipt is the body of a RecordReceipt: news of a bundle's messages,
// sent back by its destination to its source.
type Receipt struct {
	Bundle ID
	State  ReceiptState
	At     time.Time // kept to the millisecond, from 1970; the zero time is sent as 1970
	Seqs   []uint64  // the messages concerned, ascending; empty means all
	Reason string    // why, for ReceiptFailed
}

// AppendBinary appends the receipt's encoding to b.
func (r *Receipt) AppendBinary(b []byte) ([]byte, error) {
	if r.State < ReceiptDelivered || r.State > ReceiptFailed {
		return nil, &FormatError{Field: "receipt", Reason: "unknown state"}
	}
	if len(r.Reason) > MaxReasonLen || !utf8.ValidString(r.Reason) {
		return nil, &FormatError{Field: "receipt reason", Reason: "too long or not UTF-8"}
	}
	if len(r.Seqs) > maxReceiptN {
		return nil, &LimitError{What: "receipt message count", Got: uint64(len(r.Seqs)), Limit: maxReceiptN}
	}
	at, err := appendMillis("receipt time", r.At)
	if err != nil {
		return nil, err
	}
	b = append(b, byte(r.State))
	b = append(b, r.Bundle[:]...)
	b = binary.AppendUvarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(r.Seqs)))
	var prev uint64
	for i, s := range r.Seqs {
		if i > 0 && s <= prev {
			return nil, &FormatError{Field: "receipt", Reason: "message numbers not ascending"}
		}
		b = binary.AppendUvarint(b, s-prev)
		prev = s
	}
	return appendString(b, r.Reason), nil
}

// ParseReceipt decodes a RecordReceipt body.
func ParseReceipt(b []byte) (*Receipt, error) {
	d := decoder{b: b, field: "receipt"}
	r := &Receipt{State: ReceiptState(d.byte())}
	copy(r.Bundle[:], d.bytes(32))
	r.At = d.millis()
	n := d.uvarint()
	if n > maxReceiptN {
		return nil, &LimitError{What: "receipt message count", Got: n, Limit: maxReceiptN}
	}
	var prev uint64
	for i := uint64(0); i < n && d.err == nil; i++ {
		delta := d.uvarint()
		if i > 0 && delta == 0 || prev+delta < prev {
			return nil, &FormatError{Field: "receipt", Reason: "message numbers not ascending"}
		}
		prev += delta
		r.Seqs = append(r.Seqs, prev)
	}
	r.Reason = d.string(MaxReasonLen)
	if err := d.end(); err != nil {
		return nil, err
	}
	if r.State < ReceiptDelivered || r.State > ReceiptFailed {
		return nil, &FormatError{Field: "receipt", Reason: fmt.Sprintf("unknown state 0x%02x", byte(r.State))}
	}
	return r, nil
}

// FileHeader opens the body of a RecordFile; the file's bytes from Offset
// follow it to the end of the record. A file larger than one record is
// carried in several, each with the same Path and Size.
type FileHeader struct {
	Path   string // slash-separated, relative, without "." or ".." elements: see [fs.ValidPath]
	Size   uint64 // the whole file's size
	Offset uint64 // where this record's bytes go in the file
}

// AppendBinary appends the file header's encoding to b.
func (f *FileHeader) AppendBinary(b []byte) ([]byte, error) {
	if len(f.Path) > MaxPathLen || !utf8.ValidString(f.Path) || !validPath(f.Path) {
		return nil, &FormatError{Field: "file path", Reason: "empty, too long, not UTF-8 or not a relative slash-separated path"}
	}
	if f.Offset > f.Size {
		return nil, &FormatError{Field: "file header", Reason: "offset past the file's end"}
	}
	b = appendString(b, f.Path)
	b = binary.AppendUvarint(b, f.Size)
	return binary.AppendUvarint(b, f.Offset), nil
}

// ParseFileHeader decodes the file header at the start of a RecordFile
// body and returns how many bytes it took.
func ParseFileHeader(b []byte) (*FileHeader, int, error) {
	d := decoder{b: b, field: "file header"}
	f := &FileHeader{Path: d.string(MaxPathLen)}
	f.Size = d.uvarint()
	f.Offset = d.uvarint()
	if d.err != nil {
		return nil, 0, d.err
	}
	if !validPath(f.Path) {
		return nil, 0, &FormatError{Field: "file header", Reason: fmt.Sprintf("path %q is not a relative slash-separated path", f.Path)}
	}
	if f.Offset > f.Size {
		return nil, 0, &FormatError{Field: "file header", Reason: "offset past the file's end"}
	}
	return f, len(b) - len(d.b), nil
}

// validPath reports whether p names a file under a directory: it must not
// be empty, rooted, or climb out with "..". The receiver joins it to a
// directory of its own choosing.
func validPath(p string) bool {
	return p != "." && fs.ValidPath(p)
}

// appendMillis returns t in Unix milliseconds. The zero time is written as
// 0, which reads back as 1970-01-01; other times before 1970 have no
// encoding.
func appendMillis(field string, t time.Time) (uint64, error) {
	if t.IsZero() {
		return 0, nil
	}
	ms := t.UnixMilli()
	if ms < 0 {
		return 0, &FormatError{Field: field, Reason: "before 1970"}
	}
	return uint64(ms), nil
}

func checkName(field, s string) error {
	if s == "" || len(s) > MaxNameLen || !utf8.ValidString(s) {
		return &FormatError{Field: field, Reason: fmt.Sprintf("name %q is empty, longer than %d bytes or not UTF-8", s, MaxNameLen)}
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields from a record body; the first error sticks.
type decoder struct {
	b     []byte
	field string
	err   error
}

var errShort = errors.New("truncated")

func (d *decoder) fail(reason string) {
	if d.err == nil {
		d.err = &FormatError{Field: d.field, Reason: reason}
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(errShort.Error())
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("varint not minimally encoded")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// millis reads a time in Unix milliseconds.
func (d *decoder) millis() time.Time {
	ms := d.uvarint()
	if ms > math.MaxInt64 {
		d.fail("time out of range")
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail(errShort.Error())
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) {
		d.fail(fmt.Sprintf("string of %d bytes, limit %d", n, max))
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(errShort.Error())
		return ""
	}
	s := d.b[:n]
	d.b = d.b[n:]
	if !utf8.Valid(s) {
		d.fail("string is not UTF-8")
		return ""
	}
	return string(s)
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d stray bytes at the end", len(d.b)))
	}
	return d.err
}
