package ble

import (
	"encoding/hex"
	"errors"
	"testing"

	"ferry/bundle"
)

// TestWireConstants pins the values docs/ble.md specifies.
func TestWireConstants(t *testing.T) {
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"service", ServiceUUID.String(), "5f3c00018b2e4c6a9a57f3e1d0a2b7c4"},
		{"rx", RXUUID.String(), "5f3c00028b2e4c6a9a57f3e1d0a2b7c4"},
		{"tx", TXUUID.String(), "5f3c00038b2e4c6a9a57f3e1d0a2b7c4"},
		{"info", InfoUUID.String(), "5f3c00048b2e4c6a9a57f3e1d0a2b7c4"},
	} {
		if c.got != c.want {
			t.Errorf("%s UUID %s, want %s", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"version", Version, 0x01}, {"data", chunkData, 0x00}, {"last", chunkLast, 0x40},
		{"credit", chunkCredit, 0x80}, {"close", chunkClose, 0x81}, {"frame MTU", FrameMTU, 4096},
		{"central window", maxCentralWindow, 14}, {"peripheral window", defaultPeriphWindow, 256}, {"queue", defaultQueue, 256},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestInfoGolden(t *testing.T) {
	var id bundle.NodeID
	for i := range id {
		id[i] = byte(i)
	}
	b, _ := Info{Version: Version, Node: id, FrameMTU: FrameMTU, Window: 64}.MarshalBinary()
	const want = "01" + "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + "00001000" + "0040"
	if hex.EncodeToString(b) != want {
		t.Errorf("INFO %x, want %s", b, want)
	}
	i, err := ParseInfo(b)
	if err != nil || i.Node != id || i.FrameMTU != FrameMTU || i.Window != 64 {
		t.Errorf("parse: %+v, %v", i, err)
	}
	b[0] = 2
	if _, err := ParseInfo(b); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2: %v", err)
	}
	if _, err := ParseInfo(b[:20]); err == nil {
		t.Error("short INFO parsed")
	}
}

func TestChunkSize(t *testing.T) {
	for mtu, want := range map[int]int{0: 20, 23: 20, 185: 182, 515: 512, 517: 512} {
		if got := chunkSize(mtu); got != want {
			t.Errorf("chunkSize(%d) = %d, want %d", mtu, got, want)
		}
	}
}

func FuzzDeliver(f *testing.F) {
	f.Add([]byte{0x40, 'h', 'i'})
	f.Add([]byte{0x80, 0x05})
	f.Add([]byte{0x81, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		l := newLink(linkConfig{attMTU: 185, write: func([]byte) error { return nil }, hangup: func() {}, window: 8})
		l.deliver(b)
		l.deliver(b)
		l.lost()
		l.Close()
	})
}
