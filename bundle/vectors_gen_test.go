package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"ferry/bundle"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors")

// The vectors' keys are fixed, and the generator draws its randomness from
// a fixed seed, so that regenerating the vectors changes only what the
// generator changed.
const (
	// vectorIdentity opens every vector's payload but one.
	vectorIdentity = "AGE-SECRET-KEY-1GALK8NPM5HKY4NT6A2VFD5RK64XYATE8VN7RQRYURFJX58WNXQNQL5S8ZH"
	// otherRecipient is someone else's key, for the not_recipient vector.
	otherRecipient = "age19z0kl78kvsp0msupa86t5jfufunu6xykm6d7f298a7afh5h6weuszq4r02"
)

// fixedKey returns an ed25519 key whose seed is the SHA-256 of label.
func fixedKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func nodeID(key ed25519.PrivateKey) bundle.NodeID {
	return bundle.NodeID(key.Public().(ed25519.PublicKey))
}

// generator builds the vectors from one valid bundle, the base, by
// re-signing altered headers and re-sealing altered payloads.
type generator struct {
	t        *testing.T
	key      ed25519.PrivateKey
	identity *age.X25519Identity
	header   bundle.Header // the base's header, as finished by the writer
	payload  []byte        // the base's payload
	base     []byte        // the base bundle
}

func TestGenerateVectors(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate " + vectorDir)
	}
	cryptotest.SetGlobalRandom(t, 1)
	identity, err := age.ParseX25519Identity(vectorIdentity)
	if err != nil {
		t.Fatal(err)
	}
	g := &generator{t: t, key: fixedKey("ferry bundle test vectors: source"), identity: identity}
	g.makeBase()

	vs := append(g.successes(), g.headerFailures()...)
	vs = append(vs, g.payloadFailures()...)
	// Made last, so that the randomness of the vectors above stays the same.
	vs = append(vs, g.attachment())
	old, err := filepath.Glob(filepath.Join(vectorDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range old {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.identity == "" {
			v.identity = vectorIdentity
		}
		if err := os.WriteFile(filepath.Join(vectorDir, v.name), v.marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// baseHeader is the header of every vector, before the writer finishes it.
func (g *generator) baseHeader() bundle.Header {
	created := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	return bundle.Header{
		Kind:     bundle.KindMessages,
		Priority: 2,
		HopLimit: 8,
		Source:   nodeID(g.key),
		Dest:     bundle.ToNode(nodeID(fixedKey("ferry bundle test vectors: destination"))),
		Seq:      42,
		Created:  created,
		Expires:  created.Add(30 * 24 * time.Hour),
	}
}

// baseRecords are the records of the base bundle: two messages (one to a
// user, one a reply in a room), a receipt and a file.
func (g *generator) baseRecords() []openedRecord {
	at := time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)
	earlier, _ := bundle.ParseID("5c0a6d6c0f1e2b3a49586776859403a2b1c0dfeefd0c1b2a3948576675849302")
	msgs := []bundle.Message{
		{Seq: 7, Created: at, From: "ada", To: "grace", Body: "The bridge is out. Take the north road."},
		{Seq: 8, Created: at.Add(time.Second), From: "ada", To: "valley", Room: true,
			ReplyTo: &bundle.MessageRef{Node: nodeID(fixedKey("ferry bundle test vectors: destination")), Seq: 3},
			Body:    "Seen it: the ford is passable — café at the crossing is open."},
	}
	var recs []openedRecord
	for _, m := range msgs {
		recs = append(recs, openedRecord{bundle.RecordMessage, g.must(m.AppendBinary(nil))})
	}
	rc := bundle.Receipt{Bundle: earlier, State: bundle.ReceiptRead, At: at, Seqs: []uint64{3, 4, 9}}
	recs = append(recs, openedRecord{bundle.RecordReceipt, g.must(rc.AppendBinary(nil))})
	file := []byte("north road: open\nford: passable\n")
	fh := bundle.FileHeader{Path: "notes/roads.txt", Size: uint64(len(file))}
	recs = append(recs, openedRecord{bundle.RecordFile, append(g.must(fh.AppendBinary(nil)), file...)})
	return recs
}

// attachment is a direct message with a file attached: the message record,
// then the attachment record that names it by its seq.
func (g *generator) attachment() *vector {
	at := time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)
	m := bundle.Message{Seq: 9, Created: at, From: "ada", To: "grace", Body: "The map of the new road."}
	file := []byte("P1\n3 2\n0 1 0\n1 0 1\n")
	ah := bundle.AttachmentHeader{Seq: 9, Size: uint64(len(file)), Hash: sha256.Sum256(file), Name: "road map.pbm", Type: "image/x-portable-bitmap"}
	recs := []openedRecord{
		{bundle.RecordMessage, g.must(m.AppendBinary(nil))},
		{bundle.RecordAttachment, append(g.must(ah.AppendBinary(nil)), file...)},
	}
	b, _ := g.write(g.baseHeader(), recs, g.identity.Recipient())
	var types []string
	for _, r := range recs {
		types = append(types, r.typ.String())
	}
	return &vector{name: "attachment", expect: expectSuccess, id: g.bundleID(b), records: types,
		content: contentHash(recs), bundle: b, comments: []string{
			"A direct message and a file attached to it (RecordAttachment 0x04): seq, size,",
			"SHA-256, name and type, then the file's bytes. A receiver checks the hash."}}
}

func (g *generator) must(b []byte, err error) []byte {
	g.t.Helper()
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

// write packs records into a bundle with the writer.
func (g *generator) write(h bundle.Header, recs []openedRecord, recipient age.Recipient) ([]byte, bundle.Header) {
	g.t.Helper()
	f, err := os.Create(filepath.Join(g.t.TempDir(), "bundle"))
	if err != nil {
		g.t.Fatal(err)
	}
	defer f.Close()
	w, err := bundle.NewWriter(f, h, g.key, recipient)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WriteRecord(r.typ, r.body); err != nil {
			g.t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		g.t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		g.t.Fatal(err)
	}
	return b, w.Header()
}

func (g *generator) makeBase() {
	g.base, g.header = g.write(g.baseHeader(), g.baseRecords(), g.identity.Recipient())
	g.payload = g.base[len(g.base)-int(g.header.PayloadSize):]
}

// sign returns the signed prefix of h.
func (g *generator) sign(h bundle.Header) []byte {
	signed := h.SignedBytes()
	return append(signed, ed25519.Sign(g.key, signed)...)
}

// seal returns a bundle of h and payload, with the payload's size and hash
// filled in, then altered by lie, then signed.
func (g *generator) seal(h bundle.Header, payload []byte, lie func(*bundle.Header)) []byte {
	h.PayloadSize = uint64(len(payload))
	h.PayloadHash = sha256.Sum256(payload)
	if lie != nil {
		lie(&h)
	}
	return append(g.sign(h), payload...)
}

// encrypt compresses a record stream as the writer does and encrypts it
// to the vectors' identity.
func (g *generator) encrypt(stream []byte) []byte {
	g.t.Helper()
	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4<<20))
	if err != nil {
		g.t.Fatal(err)
	}
	if _, err := zw.Write(stream); err != nil {
		g.t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		g.t.Fatal(err)
	}
	var out bytes.Buffer
	aw, err := age.Encrypt(&out, g.identity.Recipient())
	if err != nil {
		g.t.Fatal(err)
	}
	if _, err := aw.Write(z.Bytes()); err != nil {
		g.t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		g.t.Fatal(err)
	}
	return out.Bytes()
}

// frame returns the framing of a record of typ and size, without its body.
func frame(typ bundle.RecordType, size uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(nil, uint64(typ)), size)
}

func stream(recs []openedRecord) []byte {
	var b []byte
	for _, r := range recs {
		b = append(append(b, frame(r.typ, uint64(len(r.body)))...), r.body...)
	}
	return b
}

func (g *generator) bundleID(b []byte) string {
	g.t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b), bundle.Limits{})
	if err != nil {
		g.t.Fatal(err)
	}
	return r.ID().String()
}

func (g *generator) successes() []*vector {
	base := g.baseRecords()
	success := func(name string, b []byte, recs []openedRecord, comments ...string) *vector {
		var types []string
		for _, r := range recs {
			types = append(types, r.typ.String())
		}
		return &vector{name: name, expect: expectSuccess, id: g.bundleID(b), records: types,
			content: contentHash(recs), comments: comments, bundle: b}
	}

	h := g.baseHeader()
	h.Extensions = []bundle.Extension{{Type: 0x7f, Value: []byte("a future field")}}
	withExt, _ := g.write(h, base[:1], g.identity.Recipient())

	h = g.baseHeader()
	h.Kind, h.Dest, h.Priority, h.HopLimit, h.Expires = bundle.KindAnnounce, bundle.Destination{Type: bundle.DestEveryone}, 0, 0, time.Time{}
	empty, _ := g.write(h, nil, g.identity.Recipient())

	offset := len(g.base) - len(g.payload)
	return []*vector{
		success("valid", g.base, base,
			"Two messages (one to a user, one a reply in a room), a receipt and a file record,",
			"written by bundle.Writer. The bundle is the bytes after this header's blank line;",
			fmt.Sprintf("its payload is %d bytes at offset %d. With the identity in identity.txt:", len(g.payload), offset),
			fmt.Sprintf("tail -c +%d bundle | head -c %d | age -d -i identity.txt | zstd -d", offset+1, len(g.payload))),
		success("noncritical_extension", withExt, base[:1],
			"The header carries extension 0x7f, which no reader knows: it is not critical",
			"(type < 0x80), so readers keep it and accept the bundle."),
		success("no_records", empty, nil,
			"An announcement to everyone with no records, no expiry, priority 0 and no hop limit."),
	}
}

func (g *generator) headerFailures() []*vector {
	fail := func(name, err, field string, b []byte, comments ...string) *vector {
		return &vector{name: name, expect: expectHeaderFailure, err: err, field: field, comments: comments, bundle: b}
	}
	prefixLen := len(g.base) - len(g.payload)

	badSig := bytes.Clone(g.base)
	badSig[prefixLen-1] ^= 0x01

	hugeHeader := binary.AppendUvarint([]byte(bundle.Magic), 1<<60)
	hugeHeader = append(hugeHeader, make([]byte, 200)...)

	version := append([]byte("FERRY\x00\x00\x02"), g.base[len(bundle.Magic):]...)

	critical := g.header
	critical.Extensions = []bundle.Extension{{Type: 0x80, Value: []byte("must understand")}}

	// The header length 156 as 0x9c 0x81 0x00 instead of 0x9c 0x01, signed.
	signed := g.header.SignedBytes()
	if !bytes.Equal(signed[8:10], []byte{0x9c, 0x01}) {
		g.t.Fatalf("header length encodes as % x", signed[8:10])
	}
	long := append([]byte(bundle.Magic), 0x9c, 0x81, 0x00)
	long = append(long, signed[10:]...)
	long = append(append(long, ed25519.Sign(g.key, long)...), g.payload...)

	// An extension whose length 1 is encoded as 0x81 0x00, signed.
	ext := append(bytes.Clone(signed[10:]), 0x01, 0x81, 0x00, 'x')
	nonCanonical := binary.AppendUvarint([]byte(bundle.Magic), uint64(len(ext)))
	nonCanonical = append(nonCanonical, ext...)
	nonCanonical = append(append(nonCanonical, ed25519.Sign(g.key, nonCanonical)...), g.payload...)

	return []*vector{
		fail("bad_signature", "ErrSignature", "", badSig,
			"The last bit of the signature is flipped."),
		fail("truncated_header", "ErrTruncated", "", g.base[:100],
			"The bundle ends inside its header."),
		fail("header_length_2p60", "LimitError", "header length", hugeHeader,
			"The header length is 2^60: refused before anything is allocated."),
		fail("not_a_bundle", "ErrNotBundle", "", g.payload,
			"A bare age file: the base bundle's payload without its prefix."),
		fail("unknown_version", "ErrVersion", "", version,
			"The magic of a format version 2 (FERRY 00 00 02), then the base bundle."),
		fail("critical_extension", "FormatError", "extension", g.seal(critical, g.payload, nil),
			"The signed header carries extension 0x80, which no reader knows and is critical."),
		fail("noncanonical_header_length", "FormatError", "header length", long,
			"The header length 156 is encoded in three bytes (9c 81 00), not two (9c 01),",
			"and signed so: a bundle has one encoding, so that it has one ID."),
		fail("noncanonical_extension", "FormatError", "header", nonCanonical,
			"An extension's length 1 is encoded in two bytes (81 00), and signed so."),
		fail("unknown_kind", "FormatError", "kind", g.seal(g.header, g.payload, func(h *bundle.Header) { h.Kind = 0x7f }),
			"The signed header has kind 0x7f."),
		fail("content_size_limit", "LimitError", "content size", g.seal(g.header, g.payload, func(h *bundle.Header) { h.ContentSize = 1 << 40 }),
			"The signed content size is 1 TiB: a zstd bomb refused at the header."),
		fail("payload_size_limit", "LimitError", "bundle size", g.seal(g.header, g.payload, func(h *bundle.Header) { h.PayloadSize = 1 << 40 }),
			"The signed payload size is 1 TiB."),
	}
}

func (g *generator) payloadFailures() []*vector {
	fail := func(name, err, field string, b []byte, comments ...string) *vector {
		return &vector{name: name, expect: expectPayloadFailure, err: err, field: field, id: g.bundleID(b), comments: comments, bundle: b}
	}
	prefixLen := len(g.base) - len(g.payload)

	// Change the first character of the X25519 stanza's share, on the age
	// header's second line, to another base64 character.
	stanza := bytes.Clone(g.base)
	share := prefixLen + len("age-encryption.org/v1\n-> X25519 ")
	if stanza[share] == 'A' {
		stanza[share] = 'B'
	} else {
		stanza[share] = 'A'
	}
	body := bytes.Clone(g.base)
	body[len(body)-1] ^= 0x01

	other, err := age.ParseX25519Recipient(otherRecipient)
	if err != nil {
		g.t.Fatal(err)
	}
	notRecipient, _ := g.write(g.baseHeader(), g.baseRecords(), other)

	base := g.baseRecords()
	msg := base[0]
	first := append(frame(msg.typ, uint64(len(msg.body))), msg.body...)

	// A zstd bomb: a message, then a file record of 64 MiB of zeros, which
	// compresses to a few hundred bytes; the header signs only the message.
	bomb := append(bytes.Clone(first), frame(bundle.RecordFile, 64<<20)...)
	bomb = append(bomb, make([]byte, 64<<20)...)
	bombHeader := g.header
	bombHeader.ContentSize = uint64(len(first))

	// The same bomb, but the header signs the message and the file record's framing.
	trailing := bombHeader
	trailing.ContentSize = uint64(len(first) + len(frame(bundle.RecordFile, 64<<20)))

	short := g.header
	short.ContentSize++

	huge := g.header
	huge.ContentSize = 1<<30 + 8
	hugeRecord := frame(bundle.RecordFile, 1<<30)

	varint := g.header
	varint.ContentSize = 3
	varintStream := []byte{0x81, 0x00, 0x00} // type 1 in two bytes, size 0

	return []*vector{
		fail("payload_hash_stanza", "ErrPayloadHash", "", stanza,
			"The first character of the age recipient stanza's share is changed: no identity",
			"matches, and the payload does not match its signed hash: the bundle is damaged,",
			"not someone else's."),
		fail("payload_hash_body", "ErrPayloadHash", "", body,
			"The last bit of the payload is flipped: age refuses the last chunk,",
			"and the payload does not match its signed hash."),
		fail("payload_hash_signed", "ErrPayloadHash", "", g.seal(g.header, g.payload, func(h *bundle.Header) { h.PayloadHash[0] ^= 0x01 }),
			"The payload decrypts and its records read, but the signed hash is not the",
			"payload's: the records are refused at the end, after the last one was read."),
		fail("truncated_payload", "ErrTruncated", "", g.base[:len(g.base)-10],
			"The last 10 bytes of the payload are missing."),
		fail("trailing_data", "ErrTrailingData", "", append(bytes.Clone(g.base), '\n'),
			"One byte follows the payload."),
		fail("not_recipient", "ErrNotRecipient", "", notRecipient,
			"The payload is encrypted to someone else: "+otherRecipient+"."),
		fail("content_size_lie", "ErrContentSize", "", g.seal(bombHeader, g.encrypt(bomb), nil),
			"A zstd bomb: a message, then a file record of 64 MiB of zeros, which",
			"compresses to a few hundred bytes. The header signs only the message's size:",
			"the file record is refused at its declared size, before any of it is decompressed."),
		fail("content_size_trailing", "ErrContentSize", "", g.seal(trailing, g.encrypt(bomb), nil),
			"The same zstd bomb, but the signed content size covers the file record's framing,",
			"not its body: the content is refused at its first byte past the signed size."),
		fail("content_size_short", "ErrContentSize", "", g.seal(short, g.encrypt(stream(base)), nil),
			"The signed content size is one byte more than the records."),
		fail("record_size_limit", "LimitError", "record size", g.seal(huge, g.encrypt(hugeRecord), nil),
			"A record declares 1 GiB, over the 64 MiB limit; the signed content size allows it."),
		fail("noncanonical_record_varint", "FormatError", "record", g.seal(varint, g.encrypt(varintStream), nil),
			"The first record's type 1 is encoded in two bytes (81 00)."),
	}
}
