package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"ferry/bundle"
)

// fuzzLimits are small, so that going over a limit is cheap to find.
var fuzzLimits = bundle.Limits{
	MaxHeaderSize:  1 << 10,
	MaxBundleSize:  64 << 10,
	MaxContentSize: 1 << 20,
	MaxRecords:     64,
	MaxRecordSize:  64 << 10,
}

// fuzzAllocBound bounds what reading one bundle under fuzzLimits may
// allocate: the limits themselves, a zstd window of at most 8 MiB and the
// buffers of age and zstd. Allocating in proportion to a size a bundle
// declares, rather than to what it holds, goes far past it.
const fuzzAllocBound = 64 << 20

// checkAllocs fails t if f allocates more than fuzzAllocBound bytes.
func checkAllocs(t *testing.T, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > fuzzAllocBound {
		t.Fatalf("allocated %d bytes reading one bundle, bound %d", n, fuzzAllocBound)
	}
}

func fuzzIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.ParseX25519Identity(vectorIdentity)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// readBundle reads a bundle to its end as a node does: verify, decrypt,
// read and decode every record. It returns the first error.
func readBundle(data []byte, id age.Identity, lim bundle.Limits) error {
	r, err := bundle.NewReader(bytes.NewReader(data), lim)
	if err != nil {
		return err
	}
	rr, err := r.Open(id)
	if err != nil {
		return err
	}
	defer rr.Close()
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		body, err := rr.Bytes()
		if err != nil {
			return err
		}
		if uint64(len(body)) != rec.Size {
			return errors.New("record body of the wrong size")
		}
		parseRecord(openedRecord{rec.Type, body})
	}
}

// checkHeaderError fails t unless err, from NewReader, is one of the kinds
// NewReader documents.
func checkHeaderError(t *testing.T, err error) {
	t.Helper()
	var le *bundle.LimitError
	var fe *bundle.FormatError
	for _, s := range []error{bundle.ErrNotBundle, bundle.ErrVersion, bundle.ErrSignature, bundle.ErrTruncated} {
		if errors.Is(err, s) {
			return
		}
	}
	if errors.As(err, &le) || errors.As(err, &fe) {
		return
	}
	t.Fatalf("NewReader: unexpected kind of error: %v", err)
}

func FuzzNewReader(f *testing.F) {
	for _, v := range readVectors(f) {
		f.Add(v.bundle)
	}
	f.Add([]byte{})
	f.Add([]byte(bundle.Magic))
	f.Add([]byte(bundle.Magic + "\x9c\x01"))
	id := fuzzIdentity(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, func() {
			_, err := bundle.NewReader(bytes.NewReader(data), fuzzLimits)
			if err != nil {
				checkHeaderError(t, err)
				return
			}
			readBundle(data, id, fuzzLimits)
		})
	})
}

// FuzzRecords fuzzes what lies behind the signature and the encryption,
// which FuzzNewReader cannot reach: it seals the input into a bundle that
// verifies and decrypts, with the given signed content size, and reads it.
// If raw is set the input is the zstd stream itself, else the record stream
// that the writer compresses.
func FuzzRecords(f *testing.F) {
	key := fixedKey("ferry bundle fuzz: source")
	id := fuzzIdentity(f)
	msg, err := (&bundle.Message{Seq: 1, From: "a", To: "b", Body: "hi"}).AppendBinary(nil)
	if err != nil {
		f.Fatal(err)
	}
	rec := append(frame(bundle.RecordMessage, uint64(len(msg))), msg...)
	f.Add(rec, uint64(len(rec)), false)
	f.Add(rec, uint64(len(rec)-1), false)
	f.Add(append(rec, rec...), uint64(len(rec)), false)
	f.Add(frame(bundle.RecordFile, 1<<30), uint64(1<<30+8), false)
	f.Add([]byte{0x81, 0x00, 0x00}, uint64(3), false)
	f.Add(zstdCompress(f, rec), uint64(len(rec)), true)
	f.Add(zstdCompress(f, make([]byte, 4<<20)), uint64(16), true)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x70, 0x01, 0x00, 0x00}, uint64(0), true) // 16 MiB window

	f.Fuzz(func(t *testing.T, data []byte, contentSize uint64, raw bool) {
		compressed := data
		if !raw {
			compressed = zstdCompress(t, data)
		}
		var payload bytes.Buffer
		w, err := age.Encrypt(&payload, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(compressed)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		h := bundle.Header{
			Kind:        bundle.KindMessages,
			Source:      nodeID(key),
			Dest:        bundle.Destination{Type: bundle.DestEveryone},
			Seq:         1,
			Created:     time.Unix(1700000000, 0),
			ContentSize: contentSize,
			PayloadSize: uint64(payload.Len()),
			PayloadHash: sha256.Sum256(payload.Bytes()),
		}
		signed := h.SignedBytes()
		b := append(append(signed, ed25519.Sign(key, signed)...), payload.Bytes()...)
		checkAllocs(t, func() {
			err := readBundle(b, id, fuzzLimits)
			if err == nil && !raw && contentSize != uint64(len(data)) {
				t.Fatalf("content of %d bytes accepted with a signed size of %d", len(data), contentSize)
			}
		})
	})
}

func zstdCompress(t testing.TB, b []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// recordSeeds returns the record bodies of type typ in the valid vectors.
func recordSeeds(f *testing.F, typ bundle.RecordType) [][]byte {
	var seeds [][]byte
	for _, v := range readVectors(f) {
		if v.expect != expectSuccess {
			continue
		}
		r, err := bundle.NewReader(bytes.NewReader(v.bundle), bundle.Limits{})
		if err != nil {
			f.Fatal(err)
		}
		recs, err := openVector(r, fuzzIdentity(f))
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range recs {
			if r.typ == typ {
				seeds = append(seeds, r.body)
			}
		}
	}
	return seeds
}

func FuzzParseMessage(f *testing.F) {
	for _, b := range recordSeeds(f, bundle.RecordMessage) {
		f.Add(b)
	}
	for _, m := range []bundle.Message{
		{Seq: 1, From: "a", To: "b"},
		{Seq: 1 << 63, Created: time.UnixMilli(1<<63 - 1), From: "ä", To: "room", Room: true, ReplyTo: &bundle.MessageRef{Seq: 2}, Body: "✓"},
	} {
		b, err := m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := bundle.ParseMessage(b)
		if err != nil {
			return
		}
		out, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %x, but it does not encode: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("parsed %x, encodes as %x", b, out)
		}
	})
}

func FuzzParseReceipt(f *testing.F) {
	for _, b := range recordSeeds(f, bundle.RecordReceipt) {
		f.Add(b)
	}
	for _, r := range []bundle.Receipt{
		{State: bundle.ReceiptDelivered},
		{State: bundle.ReceiptFailed, At: time.UnixMilli(1), Seqs: []uint64{0, 1, 1 << 63}, Reason: "no such user"},
	} {
		b, err := r.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := bundle.ParseReceipt(b)
		if err != nil {
			return
		}
		out, err := r.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %x, but it does not encode: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("parsed %x, encodes as %x", b, out)
		}
	})
}

func FuzzParseFileHeader(f *testing.F) {
	for _, b := range recordSeeds(f, bundle.RecordFile) {
		f.Add(b)
	}
	for _, h := range []bundle.FileHeader{
		{Path: "a", Size: 0},
		{Path: "photos/2026/bridge.jpg", Size: 1 << 40, Offset: 1 << 39},
	} {
		b, err := h.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, "file bytes"...))
	}
	f.Add([]byte("\x05../etc\x00\x00"))
	f.Add([]byte("\x04/etc\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := bundle.ParseFileHeader(b)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) {
			t.Fatalf("parsed %d bytes of %d", n, len(b))
		}
		out, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %x, but it does not encode: %v", b[:n], err)
		}
		if !bytes.Equal(out, b[:n]) {
			t.Fatalf("parsed %x, encodes as %x", b[:n], out)
		}
	})
}

func FuzzParseAttachmentHeader(f *testing.F) {
	for _, b := range recordSeeds(f, bundle.RecordAttachment) {
		f.Add(b)
	}
	for _, h := range []bundle.AttachmentHeader{
		{Seq: 1, Name: "a"},
		{Seq: 1 << 40, Size: bundle.MaxAttachmentSize, Name: "../../etc/passwd", Type: "text/html"},
	} {
		b, err := h.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, "file bytes"...))
	}
	f.Add([]byte("\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := bundle.ParseAttachmentHeader(b)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) || n > bundle.MaxAttachmentHeader {
			t.Fatalf("parsed %d bytes of %d", n, len(b))
		}
		if h.Size > bundle.MaxAttachmentSize || h.Name == "" {
			t.Fatalf("accepted %+v", h)
		}
		out, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %x, but it does not encode: %v", b[:n], err)
		}
		if !bytes.Equal(out, b[:n]) {
			t.Fatalf("parsed %x, encodes as %x", b[:n], out)
		}
	})
}

func FuzzParseTransferHeader(f *testing.F) {
	for _, b := range recordSeeds(f, bundle.RecordTransfer) {
		f.Add(b)
	}
	for _, h := range []bundle.TransferHeader{
		{Name: "photos", Files: 3, Bytes: 1 << 20, Part: 1, Parts: 1},
		{ID: [16]byte{1, 2}, Name: "школа 2026", Files: bundle.MaxTransferFiles, Bytes: bundle.MaxTransferBytes,
			Part: 7, Parts: bundle.MaxTransferParts, Note: "for the clinic"},
	} {
		b, err := h.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("0123456789abcdef\x02..\x00\x00\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := bundle.ParseTransferHeader(b)
		if err != nil {
			return
		}
		if !bundle.ValidTransferName(h.Name) || h.Part == 0 || h.Part > h.Parts || h.Parts > bundle.MaxTransferParts {
			t.Fatalf("accepted %+v", h)
		}
		out, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %x, but it does not encode: %v", b, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("parsed %x, encodes as %x", b, out)
		}
	})
}
