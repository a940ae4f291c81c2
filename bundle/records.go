package bundle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RecordType says what a record holds. The values are wire constants.
type RecordType uint64

// Record types.
const (
	RecordMessage RecordType = 0x01 // a [Message]
	RecordReceipt RecordType = 0x02 // a [Receipt]
	RecordFile    RecordType = 0x03 // a [FileHeader] followed by the file's bytes
)

func (t RecordType) String() string {
	switch t {
	case RecordMessage:
		return "message"
	case RecordReceipt:
		return "receipt"
	case RecordFile:
		return "file"
	case RecordAttachment:
		return "attachment"
	case RecordTransfer:
		return "transfer"
	case RecordAnnounce:
		return "announce"
	}
	return fmt.Sprintf("record(0x%x)", uint64(t))
}

// Record describes one record of a bundle.
type Record struct {
	Type RecordType
	Size uint64
}

// Records reads the decrypted, decompressed records of a bundle, like
// archive/tar's Reader: Next moves to the next record, Read reads its body.
type Records struct {
	h       *Header
	lim     Limits
	payload *payloadReader
	age     io.Reader
	dec     *pooledDecoder
	content *countingReader

	count   uint64
	left    uint64 // unread bytes of the current record
	err     error  // sticky
	scratch [1]byte
}

// Next advances to the next record, skipping what is left of the current
// one. At the end of the records it verifies the whole payload and returns
// io.EOF only if it is intact; any other error means the bundle must be
// refused and nothing read from it kept.
func (rr *Records) Next() (Record, error) {
	if rr.err != nil {
		return Record{}, rr.err
	}
	if rr.left > 0 {
		if _, err := io.CopyN(io.Discard, rr.content, int64(rr.left)); err != nil {
			return Record{}, rr.fail(rr.wrapEnd(err, "record body"))
		}
		rr.left = 0
	}
	typ, err := rr.uvarint()
	if err == io.EOF {
		return Record{}, rr.fail(rr.finish())
	}
	if err != nil {
		return Record{}, rr.fail(rr.wrapEnd(err, "record type"))
	}
	size, err := rr.uvarint()
	if err != nil {
		return Record{}, rr.fail(rr.wrapEnd(err, "record size"))
	}
	rr.count++
	if rr.count > rr.lim.MaxRecords {
		return Record{}, rr.fail(&LimitError{What: "record count", Got: rr.count, Limit: rr.lim.MaxRecords})
	}
	if size > rr.lim.MaxRecordSize {
		return Record{}, rr.fail(&LimitError{What: "record size", Got: size, Limit: rr.lim.MaxRecordSize})
	}
	if size > rr.h.ContentSize-rr.content.n {
		return Record{}, rr.fail(fmt.Errorf("%w: record of %d bytes runs past it", ErrContentSize, size))
	}
	rr.left = size
	return Record{Type: RecordType(typ), Size: size}, nil
}

// Read reads the current record's body.
func (rr *Records) Read(p []byte) (int, error) {
	if rr.err != nil {
		return 0, rr.err
	}
	if rr.left == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > rr.left {
		p = p[:rr.left]
	}
	n, err := rr.content.Read(p)
	rr.left -= uint64(n)
	if err == io.EOF && rr.left > 0 {
		return n, rr.fail(rr.wrapEnd(io.ErrUnexpectedEOF, "record body"))
	}
	if err != nil && err != io.EOF {
		return n, rr.fail(rr.wrapEnd(err, "record body"))
	}
	return n, nil
}

// Bytes reads the rest of the current record into a new slice. The size
// was checked against MaxRecordSize by Next.
func (rr *Records) Bytes() ([]byte, error) {
	b := make([]byte, rr.left)
	if _, err := io.ReadFull(rr, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Close releases the decoder. It is safe to call more than once.
func (rr *Records) Close() error {
	if rr.dec != nil {
		putDecoder(rr.dec)
		rr.dec = nil
	}
	if rr.err == nil {
		rr.err = errors.New("bundle: records closed")
	}
	return nil
}

func (rr *Records) fail(err error) error {
	rr.err = err
	if rr.dec != nil {
		putDecoder(rr.dec)
		rr.dec = nil
	}
	return err
}

func (rr *Records) uvarint() (uint64, error) {
	var v uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		n, err := rr.content.Read(rr.scratch[:])
		if n == 0 {
			if err == nil {
				i--
				continue
			}
			if err == io.EOF && i > 0 {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		b := rr.scratch[0]
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, &FormatError{Field: "record", Reason: "varint overflows 64 bits"}
		}
		if i > 0 && b == 0 {
			return 0, &FormatError{Field: "record", Reason: "varint not minimally encoded"}
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, &FormatError{Field: "record", Reason: "varint overflows 64 bits"}
}

// wrapEnd turns an error met while reading records into the reason the
// bundle is refused. A damaged payload shows up first as a decryption or
// decompression error; the payload's own verdict is more useful, so it is
// preferred when there is one.
func (rr *Records) wrapEnd(err error, where string) error {
	if e := rr.payload.err; e != nil && e != io.EOF {
		return e
	}
	var le *LimitError
	var fe *FormatError
	if errors.As(err, &le) || errors.As(err, &fe) || errors.Is(err, ErrContentSize) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return fmt.Errorf("%w: content ends inside %s", ErrContentSize, where)
	}
	// Decryption or decompression failed: find out whether the payload
	// itself was damaged.
	if perr := rr.payload.drain(); perr != nil {
		return perr
	}
	return fmt.Errorf("bundle: read %s: %w", where, err)
}

// finish checks the end of the records: the content size, the end of the
// age stream and the payload hash.
func (rr *Records) finish() error {
	if rr.content.n != rr.h.ContentSize {
		return fmt.Errorf("%w: %d bytes, signed %d", ErrContentSize, rr.content.n, rr.h.ContentSize)
	}
	if _, err := io.Copy(io.Discard, rr.age); err != nil {
		return rr.wrapEnd(err, "payload")
	}
	if err := rr.payload.drain(); err != nil {
		return err
	}
	return io.EOF
}

// countingReader counts what it reads and refuses to go past max: the
// decompressed stream may not outgrow the signed content size.
type countingReader struct {
	r   io.Reader
	n   uint64
	max uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n == c.max {
		// Only the end of the stream may follow.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: content runs past %d bytes", ErrContentSize, c.max)
		}
		return 0, err
	}
	if uint64(len(p)) > c.max-c.n {
		p = p[:c.max-c.n]
	}
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}
