package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Reader verifies a bundle as it streams in. [NewReader] reads and checks
// the header and its signature; the payload is then read once, either
// through [Reader.Payload] (to store or carry the bundle as it is) or
// through [Reader.Open] (to decrypt its records). The payload's hash is
// checked when its last byte has been read: a caller must not act on what
// it read until the stream ended without error.
type Reader struct {
	h         Header
	id        ID
	sig       [SignatureSize]byte
	signed    []byte
	lim       Limits
	payload   *payloadReader
	opened    bool
	prefixLen int
}

// NewReader reads a bundle's magic, header and signature from r and
// verifies them. It checks every limit that the header lets it check
// before reading the payload. It does not check expiry or whether the
// signer is trusted: that is the caller's policy.
func NewReader(r io.Reader, lim Limits) (*Reader, error) {
	lim = lim.orDefault()
	p, err := readPrefix(r, lim)
	if err != nil {
		return nil, err
	}
	if !p.sigValid {
		return nil, fmt.Errorf("%w from %s", ErrSignature, p.h.Source.Short())
	}
	h := p.h
	if total := uint64(p.size) + h.PayloadSize; h.PayloadSize > lim.MaxBundleSize || total > lim.MaxBundleSize {
		return nil, &LimitError{What: "bundle size", Got: max(total, h.PayloadSize), Limit: lim.MaxBundleSize}
	}
	if h.ContentSize > lim.MaxContentSize {
		return nil, &LimitError{What: "content size", Got: h.ContentSize, Limit: lim.MaxContentSize}
	}
	rd := &Reader{h: *h, signed: p.signed, sig: p.sig, lim: lim, prefixLen: p.size}
	rd.id = sha256.Sum256(p.signed)
	rd.payload = &payloadReader{r: r, left: h.PayloadSize, want: h.PayloadHash, h: sha256.New()}
	return rd, nil
}

// prefix is what precedes a bundle's payload.
type prefix struct {
	h        *Header
	signed   []byte // magic | hlen | header
	sig      [SignatureSize]byte
	sigValid bool
	size     int // bytes of magic, hlen, header and signature
}

// readPrefix reads and parses magic, header length, header and signature,
// and checks the signature without failing on it.
func readPrefix(r io.Reader, lim Limits) (*prefix, error) {
	var magic [len(Magic)]byte
	n, err := io.ReadFull(r, magic[:])
	if n == 0 || !bytes.HasPrefix(magic[:n], []byte(magicPrefix)[:min(n, len(magicPrefix))]) {
		return nil, ErrNotBundle
	}
	if err != nil {
		return nil, fmt.Errorf("%w: in magic", ErrTruncated)
	}
	if string(magic[:]) != Magic {
		return nil, fmt.Errorf("%w: magic % x", ErrVersion, magic[len(magicPrefix):])
	}
	hlen, raw, err := readUvarint(r)
	if err != nil {
		return nil, err
	}
	if hlen > lim.MaxHeaderSize {
		return nil, &LimitError{What: "header length", Got: hlen, Limit: lim.MaxHeaderSize}
	}
	if !bytes.Equal(raw, binary.AppendUvarint(nil, hlen)) {
		return nil, &FormatError{Field: "header length", Reason: "not minimally encoded"}
	}
	size := len(Magic) + len(raw) + int(hlen) + SignatureSize
	buf := make([]byte, size)
	copy(buf, Magic)
	copy(buf[len(Magic):], raw)
	if _, err := io.ReadFull(r, buf[len(Magic)+len(raw):]); err != nil {
		return nil, fmt.Errorf("%w: in header", ErrTruncated)
	}
	signed := buf[:size-SignatureSize]
	rawHeader := signed[len(Magic)+len(raw):]
	h, err := parseHeader(rawHeader)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(h.appendBinary(nil), rawHeader) {
		return nil, &FormatError{Field: "header", Reason: "not canonically encoded"}
	}
	p := &prefix{h: h, signed: signed, size: size}
	copy(p.sig[:], buf[size-SignatureSize:])
	p.sigValid = ed25519.Verify(h.Source.PublicKey(), signed, p.sig[:])
	return p, nil
}

// readUvarint reads a uvarint one byte at a time, so that nothing past it
// is consumed, and returns its raw bytes too.
func readUvarint(r io.Reader) (uint64, []byte, error) {
	var raw [binary.MaxVarintLen64]byte
	for i := range raw {
		if _, err := io.ReadFull(r, raw[i:i+1]); err != nil {
			return 0, nil, fmt.Errorf("%w: in header length", ErrTruncated)
		}
		if raw[i] < 0x80 {
			v, n := binary.Uvarint(raw[:i+1])
			if n <= 0 {
				return 0, nil, &FormatError{Field: "header length", Reason: "overflows 64 bits"}
			}
			return v, raw[:i+1], nil
		}
	}
	return 0, nil, &FormatError{Field: "header length", Reason: "overflows 64 bits"}
}

// Header returns the verified header.
func (r *Reader) Header() Header { return r.h }

// ID returns the bundle's ID.
func (r *Reader) ID() ID { return r.id }

// Signature returns the header's signature.
func (r *Reader) Signature() [SignatureSize]byte { return r.sig }

// PayloadOffset returns the offset of the payload from the bundle's start.
func (r *Reader) PayloadOffset() int64 { return int64(r.prefixLen) }

// Prefix returns the bundle's bytes before the payload: magic, header
// length, header and signature, exactly as read.
func (r *Reader) Prefix() []byte {
	return append(append([]byte(nil), r.signed...), r.sig[:]...)
}

// Payload returns the payload as it is: exactly Header().PayloadSize bytes.
// Its last Read returns io.EOF only if the bytes match the signed hash and
// nothing follows them; otherwise it returns an error wrapping
// [ErrPayloadHash], [ErrTruncated] or [ErrTrailingData].
func (r *Reader) Payload() io.Reader {
	r.opened = true
	return r.payload
}

// Open decrypts the payload with the first of ids that can, and returns
// its records. Records.Next returns io.EOF only after the whole payload has
// been read and verified against the signed hash and content size.
//
// If no identity matches, Open reads the rest of the payload before it
// returns an error wrapping [ErrNotRecipient], so that a damaged bundle is
// reported as damaged ([ErrPayloadHash], [ErrTruncated], ...) rather than
// as someone else's.
func (r *Reader) Open(ids ...age.Identity) (*Records, error) {
	if r.opened {
		return nil, errors.New("bundle: payload already read")
	}
	r.opened = true
	ar, err := age.Decrypt(r.payload, ids...)
	if err != nil {
		return nil, r.openError(err)
	}
	dec, err := getDecoder(r.h.PayloadSize >= bigPayload)
	if err != nil {
		return nil, err
	}
	if err := dec.Reset(ar); err != nil {
		putDecoder(dec)
		return nil, fmt.Errorf("bundle: decompress: %w", err)
	}
	rec := &Records{
		h:       &r.h,
		lim:     r.lim,
		payload: r.payload,
		age:     ar,
		dec:     dec,
	}
	rec.content = &countingReader{r: dec, max: r.h.ContentSize}
	return rec, nil
}

// openError turns a failure to decrypt the age header into the reason the
// bundle is refused. A damaged payload fails to decrypt too, and a damaged
// recipient stanza looks like someone else's: the payload's own verdict is
// more useful, so the rest of the payload is read to get it.
func (r *Reader) openError(err error) error {
	if perr := r.payload.drain(); perr != nil {
		return perr
	}
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return fmt.Errorf("%w: no identity matches", ErrNotRecipient)
	}
	return fmt.Errorf("bundle: decrypt: %w", err)
}

// payloadReader yields exactly left bytes of r and checks them against
// the signed hash.
type payloadReader struct {
	r    io.Reader
	left uint64
	read uint64
	want [32]byte
	h    hash.Hash
	err  error // sticky
}

func (p *payloadReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.left == 0 {
		p.err = p.finish()
		return 0, p.err
	}
	if uint64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.left -= uint64(n)
	p.read += uint64(n)
	if err == io.EOF && p.left > 0 {
		p.err = fmt.Errorf("%w: payload ends at byte %d of %d", ErrTruncated, p.read, p.read+p.left)
		return n, p.err
	}
	if err != nil && err != io.EOF {
		p.err = fmt.Errorf("bundle: read payload: %w", err)
		return n, p.err
	}
	if p.left == 0 {
		if p.err = p.finish(); p.err != io.EOF {
			return n, p.err
		}
		return n, nil
	}
	return n, nil
}

func (p *payloadReader) finish() error {
	var sum [32]byte
	p.h.Sum(sum[:0])
	if sum != p.want {
		return ErrPayloadHash
	}
	var one [1]byte
	n, err := io.ReadFull(p.r, one[:])
	if n > 0 {
		return ErrTrailingData
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("bundle: read payload: %w", err)
	}
	return io.EOF
}

// drain reads the payload to its end and returns nil if it verified.
func (p *payloadReader) drain() error {
	_, err := io.Copy(io.Discard, p)
	if err == nil {
		err = p.err
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// Decoders for payloads of bigPayload bytes or more decode on two
// goroutines besides the reader's (reading and decrypting the input on
// one, decoding on another), so that a large bundle uses both cores of a
// Pi; smaller ones decode in the caller's goroutine, which costs nothing
// to start.
const bigPayload = 4 << 20

var decoders, bigDecoders sync.Pool

// newDecoders asks the goroutine started by init for a new decoder. A
// zstd.Decoder holds channels, and a channel made inside a
// testing/synctest bubble may not be used outside it: pooled decoders
// are made outside every bubble, so that tests running nodes on a
// virtual clock (package lora) share the pool safely.
// Both channels are made here, outside any bubble; decoders are
// interchangeable, so concurrent callers may take each other's.
var (
	askDecoder = make(chan int) // the decoder concurrency wanted
	newDecoder = make(chan decoderOrErr)
)

type decoderOrErr struct {
	d   *zstd.Decoder
	err error
}

func init() {
	go func() {
		for conc := range askDecoder {
			d, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(conc),
				zstd.WithDecoderMaxWindow(maxWindow),
				zstd.WithDecoderLowmem(true),
			)
			newDecoder <- decoderOrErr{d, err}
		}
	}()
}

func getDecoder(big bool) (*pooledDecoder, error) {
	pool, conc := &decoders, 1
	if big {
		pool, conc = &bigDecoders, 2
	}
	if d, ok := pool.Get().(*zstd.Decoder); ok {
		return &pooledDecoder{d, pool}, nil
	}
	askDecoder <- conc
	r := <-newDecoder
	if r.err != nil {
		return nil, fmt.Errorf("bundle: decompress: %w", r.err)
	}
	return &pooledDecoder{r.d, pool}, nil
}

// pooledDecoder is a decoder and the pool it goes back to.
type pooledDecoder struct {
	*zstd.Decoder
	pool *sync.Pool
}

func putDecoder(d *pooledDecoder) {
	d.Reset(nil)
	d.pool.Put(d.Decoder)
}
