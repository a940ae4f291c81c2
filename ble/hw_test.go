//go:build blehw && linux

package ble

import (
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"ferry/bundle"
)

// Hardware tests: two machines with adapters that BlueZ does not hold
// (docs/ble.md). On the first:
//
//	go test -tags blehw ./ble -run TestHardware -ble.role=echo -ble.adapter=hci0 -v
//
// and on the second, with the first one's address:
//
//	go test -tags blehw ./ble -run TestHardware -ble.role=send -ble.peer=AA:BB:CC:DD:EE:FF -v
var (
	hwRole    = flag.String("ble.role", "", "echo (peripheral) or send (central)")
	hwAdapter = flag.String("ble.adapter", "hci0", "the HCI adapter")
	hwPeer    = flag.String("ble.peer", "", "the echo node's address; empty: scan for one")
	hwBytes   = flag.Int("ble.bytes", 200_000, "bytes to send")
	hwMTU     = flag.Int("ble.mtu", 0, "the ATT MTU to ask for; 0: the most")
)

func TestHardware(t *testing.T) {
	switch *hwRole {
	case "echo":
		hwEcho(t)
	case "send":
		hwSend(t)
	default:
		t.Skip("set -ble.role=echo or -ble.role=send")
	}
}

func hwOpen(t *testing.T, name string) *Device {
	var id bundle.NodeID
	for i := range id {
		id[i] = byte(rand.IntN(256))
	}
	d, err := Open(*hwAdapter, id, DeviceOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	t.Logf("%s on %s, address %s", name, *hwAdapter, d.Address())
	return d
}

// hwEcho advertises, accepts one central and sends back every frame.
func hwEcho(t *testing.T) {
	d := hwOpen(t, "ferry-echo")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	go d.Advertise(ctx)
	l, err := d.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("central %s connected, chunks of %d bytes", l.Info().Remote, l.ChunkSize())
	for {
		f, err := l.Recv()
		if err != nil {
			t.Logf("link ended: %v", err)
			return
		}
		if err := l.Send(f); err != nil {
			t.Fatal(err)
		}
	}
}

// hwSend finds the echo node, sends frames of random sizes and checks
// each comes back, and reports the rate.
func hwSend(t *testing.T) {
	d := hwOpen(t, "ferry-send")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	addr := *hwPeer
	if addr == "" {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		peers, err := d.Scan(sctx)
		scancel()
		if err != nil || len(peers) == 0 {
			t.Fatalf("no ferry node found: %v", err)
		}
		addr = peers[0].Addr
	}
	l, info, err := d.Dial(ctx, addr, CentralOptions{MTU: *hwMTU})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Logf("connected to %s (%s): chunks of %d bytes, window %d", addr, info.Node.Short(), l.ChunkSize(), info.Window)
	start, sent := time.Now(), 0
	for sent < *hwBytes {
		f := make([]byte, 1+rand.IntN(FrameMTU))
		for i := range f {
			f[i] = byte(rand.IntN(256))
		}
		if err := l.Send(f); err != nil {
			t.Fatal(err)
		}
		g, err := l.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f, g) {
			t.Fatalf("frame of %d bytes came back as %d different bytes", len(f), len(g))
		}
		sent += len(f)
	}
	took := time.Since(start)
	t.Logf("%d bytes each way in %s: %.1f kB/s each way", sent, took.Round(time.Millisecond), float64(sent)/took.Seconds()/1000)
}
