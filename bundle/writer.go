package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Writer packs records into a bundle. It streams: records are compressed,
// encrypted and hashed as they are written, and the header and signature
// are written last, into the space reserved for them at the start of dst.
// Close must be called to finish the bundle.
type Writer struct {
	dst    io.WriteSeeker
	start  int64 // offset of the bundle in dst
	h      Header
	key    ed25519.PrivateKey
	lim    Limits
	prefix int // bytes before the payload: magic, hlen, header, signature

	payload *payloadWriter
	age     io.WriteCloser
	sink    *sink // age, on other goroutines once the bundle is large
	zw      *zstd.Encoder
	zwOpen  bool // zw has a frame under way
	frames  int  // frames written: compressed and stored
	rawHdr  []byte

	content   uint64 // record bytes written so far, framing included
	records   uint64
	recLeft   uint64 // bytes still owed to the current streamed record
	scratch   [2 * binary.MaxVarintLen64]byte
	err       error
	finished  bool
	finalized Header
}

// NewWriter starts a bundle at dst's current offset. The header's Source
// must be key's public key; Created, Kind and Dest must be set. The payload
// fields and the Nonce are filled in by the writer. The payload is
// encrypted to recipients.
func NewWriter(dst io.WriteSeeker, h Header, key ed25519.PrivateKey, recipients ...age.Recipient) (*Writer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("bundle: signing key has the wrong size")
	}
	if pub := key.Public().(ed25519.PublicKey); string(pub) != string(h.Source[:]) {
		return nil, errors.New("bundle: header source is not the signing key")
	}
	if len(recipients) == 0 {
		return nil, errors.New("bundle: no recipients")
	}
	if h.Created.IsZero() {
		return nil, errors.New("bundle: header has no creation time")
	}
	if _, err := parseHeader(h.appendBinary(nil)); err != nil {
		return nil, err
	}
	start, err := dst.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("bundle: writer needs a seekable destination: %w", err)
	}
	w := &Writer{dst: dst, start: start, h: h, key: key, lim: DefaultLimits()}
	if uint64(h.size()) > w.lim.MaxHeaderSize {
		return nil, &LimitError{What: "header length", Got: uint64(h.size()), Limit: w.lim.MaxHeaderSize}
	}
	w.prefix = len(Magic) + uvarintLen(uint64(h.size())) + h.size() + SignatureSize
	// Reserve the prefix; Close fills it in.
	if _, err := dst.Write(make([]byte, w.prefix)); err != nil {
		return nil, fmt.Errorf("bundle: write: %w", err)
	}
	w.payload = &payloadWriter{w: dst, h: sha256.New(), max: w.lim.MaxBundleSize - uint64(w.prefix)}
	if w.age, err = age.Encrypt(w.payload, recipients...); err != nil {
		return nil, fmt.Errorf("bundle: encrypt: %w", err)
	}
	w.sink = &sink{w: w.age}
	w.zw, err = zstd.NewWriter(w.sink,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(writerWindow),
		zstd.WithEncoderConcurrency(2),
	)
	if err != nil {
		return nil, fmt.Errorf("bundle: compress: %w", err)
	}
	return w, nil
}

// WriteRecord writes one whole record.
func (w *Writer) WriteRecord(typ RecordType, data []byte) error {
	if err := w.BeginRecord(typ, uint64(len(data))); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// BeginRecord starts a record of exactly size bytes, to be written with
// Write. It lets a large record (a file, an archive chunk) stream through.
func (w *Writer) BeginRecord(typ RecordType, size uint64) error {
	if w.err != nil {
		return w.err
	}
	if w.finished {
		return errors.New("bundle: write after close")
	}
	if w.recLeft != 0 {
		return w.fail(fmt.Errorf("bundle: record ended %d bytes early", w.recLeft))
	}
	if size > w.lim.MaxRecordSize {
		return w.fail(&LimitError{What: "record size", Got: size, Limit: w.lim.MaxRecordSize})
	}
	if w.records+1 > w.lim.MaxRecords {
		return w.fail(&LimitError{What: "record count", Got: w.records + 1, Limit: w.lim.MaxRecords})
	}
	b := binary.AppendUvarint(w.scratch[:0], uint64(typ))
	b = binary.AppendUvarint(b, size)
	if err := w.writeContent(b); err != nil {
		return err
	}
	w.records++
	w.recLeft = size
	return nil
}

// Write writes body bytes of the current record.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if uint64(len(p)) > w.recLeft {
		return 0, w.fail(fmt.Errorf("bundle: record overflows its declared size by %d bytes", uint64(len(p))-w.recLeft))
	}
	if err := w.writeContent(p); err != nil {
		return 0, err
	}
	w.recLeft -= uint64(len(p))
	return len(p), nil
}

func (w *Writer) writeContent(p []byte) error {
	if w.content+uint64(len(p)) > w.lim.MaxContentSize {
		return w.fail(&LimitError{What: "content size", Got: w.content + uint64(len(p)), Limit: w.lim.MaxContentSize})
	}
	if len(p) >= storeMin && incompressible(p) {
		if err := w.store(p); err != nil {
			return w.fail(err)
		}
	} else {
		if !w.zwOpen {
			if w.frames > 0 {
				w.zw.Reset(w.sink)
			}
			w.zwOpen = true
			w.frames++
		}
		if _, err := w.zw.Write(p); err != nil {
			return w.fail(fmt.Errorf("bundle: write: %w", err))
		}
	}
	w.content += uint64(len(p))
	return nil
}

// Bytes that do not compress (media, archives, encrypted files) are
// stored: written in zstd frames of raw blocks (RFC 8878, 3.1.1.2), which
// any zstd decoder reads and which cost no time to "compress" and almost
// none to decompress. A write of storeMin bytes or more is stored when a
// sample of it looks incompressible.
const (
	storeMin      = 64 << 10
	storedFrame   = 1 << 20   // content of one stored frame, at most
	rawBlockMax   = 128 << 10 // RFC 8878: Block_Maximum_Size
	sampleWindow  = 2 << 10
	storedEntropy = 7.9 // bits per byte of the sample, at least
)

// incompressible reports whether p looks like it would not compress: the
// byte entropy of three samples (start, middle, end) is near 8 bits.
func incompressible(p []byte) bool {
	var hist [256]uint32
	for _, at := range [3]int{0, len(p)/2 - sampleWindow/2, len(p) - sampleWindow} {
		for _, c := range p[at : at+sampleWindow] {
			hist[c]++
		}
	}
	const n = 3 * sampleWindow
	var e float64
	for _, c := range hist {
		if c > 0 {
			f := float64(c) / n
			e -= f * math.Log2(f)
		}
	}
	return e >= storedEntropy
}

// store ends the compressed frame under way, if any, and writes p as
// frames of raw blocks.
func (w *Writer) store(p []byte) error {
	if w.zwOpen {
		if err := w.zw.Close(); err != nil {
			return fmt.Errorf("bundle: compress: %w", err)
		}
		w.zwOpen = false
	}
	for len(p) > 0 {
		frame := p[:min(len(p), storedFrame)]
		p = p[len(frame):]
		// Magic, then a descriptor: single segment, a 4-byte content
		// size, no checksum, no dictionary.
		h := binary.LittleEndian.AppendUint32(w.rawHdr[:0], 0xFD2FB528)
		h = append(h, 0xA0)
		h = binary.LittleEndian.AppendUint32(h, uint32(len(frame)))
		for len(frame) > 0 {
			block := frame[:min(len(frame), rawBlockMax)]
			frame = frame[len(block):]
			bh := uint32(len(block)) << 3 // Block_Type 0: raw
			if len(frame) == 0 {
				bh |= 1 // Last_Block
			}
			h = append(h, byte(bh), byte(bh>>8), byte(bh>>16))
			if _, err := w.sink.Write(h); err != nil {
				return fmt.Errorf("bundle: write: %w", err)
			}
			if _, err := w.sink.Write(block); err != nil {
				return fmt.Errorf("bundle: write: %w", err)
			}
			h = h[:0]
		}
		w.rawHdr = h
		w.frames++
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Records returns the number of records written so far.
func (w *Writer) Records() uint64 { return w.records }

// ContentSize returns the record bytes written so far.
func (w *Writer) ContentSize() uint64 { return w.content }

// Close finishes the payload, then writes the header and its signature at
// the start of the bundle, and leaves dst positioned at the bundle's end.
func (w *Writer) Close() error {
	if w.finished {
		return w.err
	}
	w.finished = true
	if w.err != nil {
		w.zw.Close()
		w.sink.flush()
		return w.err
	}
	if w.recLeft != 0 {
		w.zw.Close()
		w.sink.flush()
		return w.fail(fmt.Errorf("bundle: last record ended %d bytes early", w.recLeft))
	}
	// The frame under way ends; an empty bundle still gets one (empty)
	// frame, so that its payload is a zstd stream.
	if w.zwOpen || w.frames == 0 {
		if err := w.zw.Close(); err != nil {
			return w.fail(fmt.Errorf("bundle: compress: %w", err))
		}
	}
	if err := w.sink.flush(); err != nil {
		return w.fail(fmt.Errorf("bundle: write: %w", err))
	}
	if err := w.age.Close(); err != nil {
		return w.fail(fmt.Errorf("bundle: encrypt: %w", err))
	}
	h := w.h
	h.ContentSize = w.content
	h.PayloadSize = w.payload.n
	copy(h.PayloadHash[:], w.payload.h.Sum(nil))
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return w.fail(err)
	}
	signed := h.SignedBytes()
	prefix := append(signed, ed25519.Sign(w.key, signed)...)
	if len(prefix) != w.prefix {
		return w.fail(fmt.Errorf("bundle: internal error: prefix is %d bytes, reserved %d", len(prefix), w.prefix))
	}
	if _, err := w.dst.Seek(w.start, io.SeekStart); err != nil {
		return w.fail(fmt.Errorf("bundle: seek: %w", err))
	}
	if _, err := w.dst.Write(prefix); err != nil {
		return w.fail(fmt.Errorf("bundle: write header: %w", err))
	}
	if _, err := w.dst.Seek(w.start+int64(w.prefix)+int64(h.PayloadSize), io.SeekStart); err != nil {
		return w.fail(fmt.Errorf("bundle: seek: %w", err))
	}
	w.finalized = h
	return nil
}

// Header returns the finished header. It is complete only after Close.
func (w *Writer) Header() Header { return w.finalized }

// ID returns the bundle's ID. It is valid only after Close.
func (w *Writer) ID() ID { return w.finalized.ID() }

// Size returns the bundle's total size in bytes. It is valid only after Close.
func (w *Writer) Size() int64 { return int64(w.prefix) + int64(w.finalized.PayloadSize) }

// payloadWriter hashes and counts the payload on its way to dst, and stops
// it at the bundle size limit.
type payloadWriter struct {
	w   io.Writer
	h   hash.Hash
	n   uint64
	max uint64
}

func (p *payloadWriter) Write(b []byte) (int, error) {
	if p.n+uint64(len(b)) > p.max {
		return 0, &LimitError{What: "payload size", Got: p.n + uint64(len(b)), Limit: p.max}
	}
	n, err := p.w.Write(b)
	p.h.Write(b[:n])
	p.n += uint64(n)
	return n, err
}
