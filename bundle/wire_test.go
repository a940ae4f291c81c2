package bundle_test

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
)

// The tests in this file pin every wire constant and field layout of the
// format to a literal, written out by hand from docs/bundle.md. A change
// that renumbers a constant or moves a field fails here: such a change
// needs a new Magic, not an edit of these tests.

// unhex decodes hex written in commented chunks; spaces are ignored.
func unhex(t *testing.T, chunks ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(chunks, ""), " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWireMagic(t *testing.T) {
	if want := []byte{'F', 'E', 'R', 'R', 'Y', 0x00, 0x00, 0x01}; !bytes.Equal([]byte(bundle.Magic), want) {
		t.Errorf("Magic is % x, want % x", bundle.Magic, want)
	}
	if bundle.SignatureSize != 64 {
		t.Errorf("SignatureSize is %d, want 64", bundle.SignatureSize)
	}
}

func TestWireHeader(t *testing.T) {
	h := bundle.Header{
		Kind:        bundle.KindArchive,
		Priority:    7,
		HopLimit:    5,
		Source:      bundle.NodeID(bytes.Repeat([]byte{0x11}, 32)),
		Dest:        bundle.Destination{Type: bundle.DestGroup, ID: [32]byte(bytes.Repeat([]byte{0x22}, 32))},
		Seq:         0x0102030405060708,
		Created:     time.Unix(0x60000000, 0),
		Expires:     time.Unix(0x70000000, 0),
		ContentSize: 0x1000,
		PayloadSize: 0x2000,
		PayloadHash: [32]byte(bytes.Repeat([]byte{0x33}, 32)),
		Nonce:       [16]byte(bytes.Repeat([]byte{0x44}, 16)),
	}
	want := unhex(t,
		"46 45 52 52 59 00 00 01", // magic
		"9c 01",                   // header length: 156, the fixed part
		"02",                      // 0: kind
		"07",                      // 1: priority
		"05",                      // 2: hop limit
		"02",                      // 3: destination type
		strings.Repeat("11", 32),  // 4: source
		strings.Repeat("22", 32),  // 36: destination id
		"01 02 03 04 05 06 07 08", // 68: seq
		"00 00 00 00 60 00 00 00", // 76: created
		"00 00 00 00 70 00 00 00", // 84: expires
		"00 00 00 00 00 00 10 00", // 92: content size
		"00 00 00 00 00 00 20 00", // 100: payload size
		strings.Repeat("33", 32),  // 108: payload hash
		strings.Repeat("44", 16),  // 140: nonce
	)
	if got := h.SignedBytes(); !bytes.Equal(got, want) {
		t.Errorf("header encodes as\n%x\nwant\n%x", got, want)
	}

	h.Created, h.Expires = time.Time{}, time.Time{}
	h.Extensions = []bundle.Extension{{Type: 0x01, Value: []byte("ab")}, {Type: 0x7f}}
	got := h.SignedBytes()
	if want := unhex(t, "a2 01"); !bytes.Equal(got[8:10], want) {
		t.Errorf("header length with extensions encodes as % x, want % x (156+4+2)", got[8:10], want)
	}
	if want := unhex(t, "00 00 00 00 00 00 00 00", "00 00 00 00 00 00 00 00"); !bytes.Equal(got[10+76:10+92], want) {
		t.Errorf("zero times encode as % x, want zeros", got[10+76:10+92])
	}
	if want := unhex(t, "01 02 61 62", "7f 00"); !bytes.Equal(got[10+156:], want) {
		t.Errorf("extensions encode as % x, want % x", got[10+156:], want)
	}
}

func TestWireConstants(t *testing.T) {
	type constant struct {
		name string
		got  uint64
		want uint64
	}
	for _, c := range []constant{
		{"KindMessages", uint64(bundle.KindMessages), 0x01},
		{"KindArchive", uint64(bundle.KindArchive), 0x02},
		{"KindAnnounce", uint64(bundle.KindAnnounce), 0x03},
		{"KindKeys", uint64(bundle.KindKeys), 0x04},
		{"DestNode", uint64(bundle.DestNode), 0x01},
		{"DestGroup", uint64(bundle.DestGroup), 0x02},
		{"DestEveryone", uint64(bundle.DestEveryone), 0x03},
		{"RecordMessage", uint64(bundle.RecordMessage), 0x01},
		{"RecordReceipt", uint64(bundle.RecordReceipt), 0x02},
		{"RecordFile", uint64(bundle.RecordFile), 0x03},
		{"RecordAttachment", uint64(bundle.RecordAttachment), 0x04},
		{"RecordTransfer", uint64(bundle.RecordTransfer), 0x05},
		{"MaxAttachmentSize", bundle.MaxAttachmentSize, 52428800},
		{"RecordAnnounce", uint64(bundle.RecordAnnounce), 0x20},
		{"MaxAnnounceSize", bundle.MaxAnnounceSize, 16384},
		{"MaxAnnounceCard", bundle.MaxAnnounceCard, 2048},
		{"MaxAnnounceCarriers", bundle.MaxAnnounceCarriers, 16},
		{"MaxAnnounceHeard", bundle.MaxAnnounceHeard, 128},
		{"ReceiptDelivered", uint64(bundle.ReceiptDelivered), 0x01},
		{"ReceiptRead", uint64(bundle.ReceiptRead), 0x02},
		{"ReceiptFailed", uint64(bundle.ReceiptFailed), 0x03},
		{"MaxNameLen", bundle.MaxNameLen, 64},
		{"MaxBodyLen", bundle.MaxBodyLen, 65536},
		{"MaxReasonLen", bundle.MaxReasonLen, 256},
		{"MaxPathLen", bundle.MaxPathLen, 1024},
		{"DefaultMaxHeaderSize", bundle.DefaultMaxHeaderSize, 4096},
		{"DefaultMaxBundleSize", bundle.DefaultMaxBundleSize, 1073741823},
		{"DefaultMaxContentSize", bundle.DefaultMaxContentSize, 4294967296},
		{"DefaultMaxRecords", bundle.DefaultMaxRecords, 1048576},
		{"DefaultMaxRecordSize", bundle.DefaultMaxRecordSize, 67108864},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestWireMessage(t *testing.T) {
	m := bundle.Message{
		Seq:     300,
		Created: time.UnixMilli(1700000000123),
		From:    "ada",
		To:      "valley",
		Room:    true,
		ReplyTo: &bundle.MessageRef{Node: bundle.NodeID(bytes.Repeat([]byte{0x55}, 32)), Seq: 9},
		Body:    "hi",
	}
	want := unhex(t,
		"03",                           // flags: room | reply
		"ac 02",                        // seq 300
		"fb d0 95 ff bc 31",            // created, Unix milliseconds
		"03 61 64 61",                  // from
		"06 76 61 6c 6c 65 79",         // to
		strings.Repeat("55", 32), "09", // reply to: node, seq
		"02 68 69", // body
	)
	got, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("message encodes as\n%x\nwant\n%x", got, want)
	}

	// Each flag on its own.
	for _, c := range []struct {
		room  bool
		reply bool
		flags byte
	}{{false, false, 0x00}, {true, false, 0x01}, {false, true, 0x02}, {true, true, 0x03}} {
		m := bundle.Message{Seq: 1, From: "a", To: "b", Room: c.room}
		if c.reply {
			m.ReplyTo = &bundle.MessageRef{}
		}
		got, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != c.flags {
			t.Errorf("room %v, reply %v: flags %#02x, want %#02x", c.room, c.reply, got[0], c.flags)
		}
	}
}

func TestWireReceipt(t *testing.T) {
	r := bundle.Receipt{
		Bundle: bundle.ID(bytes.Repeat([]byte{0x66}, 32)),
		State:  bundle.ReceiptFailed,
		At:     time.UnixMilli(1700000000456),
		Seqs:   []uint64{5, 6, 200},
		Reason: "full",
	}
	want := unhex(t,
		"03",                     // state
		strings.Repeat("66", 32), // bundle
		"c8 d3 95 ff bc 31",      // at, Unix milliseconds
		"03",                     // count
		"05 01 c2 01",            // 5, +1, +194
		"04 66 75 6c 6c",         // reason
	)
	got, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("receipt encodes as\n%x\nwant\n%x", got, want)
	}
}

func TestWireFileHeader(t *testing.T) {
	f := bundle.FileHeader{Path: "a/b.txt", Size: 1000, Offset: 500}
	want := unhex(t,
		"07 61 2f 62 2e 74 78 74", // path
		"e8 07",                   // size 1000
		"f4 03",                   // offset 500
	)
	got, err := f.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file header encodes as\n%x\nwant\n%x", got, want)
	}
}

func TestWireAttachmentHeader(t *testing.T) {
	h := bundle.AttachmentHeader{Seq: 300, Size: 5, Name: "a.txt", Type: "text/plain"}
	copy(h.Hash[:], bytes.Repeat([]byte{0x77}, 32))
	want := unhex(t,
		"ac 02",                            // seq 300
		"05",                               // size
		strings.Repeat("77", 32),           // SHA-256
		"05 61 2e 74 78 74",                // name
		"0a 74 65 78 74 2f 70 6c 61 69 6e", // type
	)
	got, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("attachment header encodes as\n%x\nwant\n%x", got, want)
	}
	back, n, err := bundle.ParseAttachmentHeader(append(got, "hello"...))
	if err != nil || n != len(got) || *back != h {
		t.Errorf("parsed back %+v, %d bytes, %v", back, n, err)
	}
	for _, bad := range []bundle.AttachmentHeader{
		{Seq: 1, Size: bundle.MaxAttachmentSize + 1, Name: "a"},
		{Seq: 1, Name: ""},
		{Seq: 1, Name: strings.Repeat("x", bundle.MaxAttachmentName+1)},
		{Seq: 1, Name: "a", Type: "\xff"},
	} {
		if _, err := bad.AppendBinary(nil); err == nil {
			t.Errorf("%+v encoded", bad)
		}
	}
}
