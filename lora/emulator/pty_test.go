package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tarm/serial"

	"ferry/lora"
	"ferry/lora/emulator"
)

// fast settings keep real-clock pty tests short: SF7 at 500 kHz puts
// 251 bytes on air in ~100 ms.
var fast = lora.Params{SF: 7, Bandwidth: 500000, CR: 1, Frequency: 869_525_000, TXPower: 14}

func openPort(t *testing.T, p *emulator.Port) *serial.Port {
	t.Helper()
	s, err := serial.OpenPort(&serial.Config{Name: p.Path, Baud: 115200, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("tarm/serial opens %s: %v", p.Path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rnodePair(t *testing.T, cfg emulator.Config) (a, b *lora.RNode, pa, pb *emulator.Port) {
	air := emulator.New(cfg)
	var err error
	if pa, err = air.OpenPTY("a", emulator.RNode, lora.Params{}); err != nil {
		t.Fatal(err)
	}
	if pb, err = air.OpenPTY("b", emulator.RNode, lora.Params{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pa.Close(); pb.Close() })
	a, b = lora.NewRNode(openPort(t, pa)), lora.NewRNode(openPort(t, pb))
	t.Cleanup(func() { a.Close(); b.Close() })
	for _, m := range []*lora.RNode{a, b} {
		if err := m.Configure(t.Context(), fast, lora.EU868Sub10); err != nil {
			t.Fatal(err)
		}
	}
	return a, b, pa, pb
}

func recvWithin(t *testing.T, m lora.Modem, d time.Duration) (lora.Packet, error) {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return m.Recv(ctx)
}

func exchange(t *testing.T, a, b lora.Modem, n int) {
	t.Helper()
	for i := range n {
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		frame := bytes.Repeat([]byte{byte(i), 0xC0, 0xDB, '\n'}, 1+i*7%60)[:min(251, 4*(1+i*7%60))]
		if err := from.Send(t.Context(), frame); err != nil {
			t.Fatalf("frame %d: send: %v", i, err)
		}
		p, err := recvWithin(t, to, 30*time.Second)
		if err != nil {
			t.Fatalf("frame %d: recv: %v", i, err)
		}
		if !bytes.Equal(p.Data, frame) {
			t.Fatalf("frame %d: got % x, want % x", i, p.Data, frame)
		}
		if p.RSSI != -90 || p.SNR != 7.5 {
			t.Errorf("frame %d: RSSI %d SNR %.2f, want -90 7.5", i, p.RSSI, p.SNR)
		}
	}
}

func TestRNodeOverPTY(t *testing.T) {
	a, b, pa, _ := rnodePair(t, emulator.Config{})
	if got := pa.Radio.Params(); got.SF != 7 || got.Bandwidth != 500000 || got.CR != 1 || got.Frequency != 869_525_000 || got.TXPower != 14 {
		t.Fatalf("modem holds %+v", got)
	}
	exchange(t, a, b, 8)
	if s := a.Stats(); s.Sent != 4 || s.Received != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestRF95OverPTY(t *testing.T) {
	air := emulator.New(emulator.Config{})
	var ms []*lora.RF95
	for _, n := range []string{"a", "b"} {
		p, err := air.OpenPTY(n, emulator.RF95, lora.Params{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		m := lora.NewRF95(openPort(t, p))
		t.Cleanup(func() { m.Close() })
		if err := m.Configure(t.Context(), 1, fast.Frequency); err != nil {
			t.Fatal(err)
		}
		info, err := m.Info(t.Context())
		if err != nil || len(info) == 0 {
			t.Fatalf("AT+INFO: %q, %v", info, err)
		}
		ms = append(ms, m)
	}
	exchange(t, ms[0], ms[1], 6)
}

func TestPTYFaults(t *testing.T) {
	a, b, pa, pb := rnodePair(t, emulator.Config{})

	// Garbage and a truncated frame from the port are skipped.
	pb.Inject([]byte("\x00\xff noise \xdb\x41"))
	pb.Inject([]byte{lora.FEND, 0x00, 'c', 'u', 't', lora.FESC}) // cut inside an escape
	pb.Inject([]byte{lora.FEND, 0x05, lora.FESC, 0x41, lora.FEND})
	if err := a.Send(t.Context(), []byte("after noise")); err != nil {
		t.Fatal(err)
	}
	p, err := recvWithin(t, b, 30*time.Second)
	if err != nil || string(p.Data) != "after noise" {
		t.Fatalf("after garbage: %q, %v", p.Data, err)
	}
	if b.Stats().Skipped == 0 {
		t.Error("garbage not counted")
	}

	// A modem that reports errors.
	pa.FailTX(true)
	if err := a.Send(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	_, err = recvWithin(t, a, 30*time.Second)
	var me *lora.ModemError
	if !errors.As(err, &me) || !errors.Is(err, lora.ErrModem) || me.Code != 0x02 {
		t.Fatalf("tx failure: %v", err)
	}
	t.Logf("status: %v", err)
	pa.FailTX(false)

	// A modem that stops answering.
	pa.Mute(true)
	err = a.Detect(t.Context())
	if !errors.Is(err, lora.ErrNoAnswer) {
		t.Fatalf("mute modem: %v", err)
	}
	t.Logf("status: %v", err)
	pa.Mute(false)
	if err := a.Detect(t.Context()); err != nil {
		t.Fatalf("modem back: %v", err)
	}
}

func TestRF95Faults(t *testing.T) {
	air := emulator.New(emulator.Config{})
	p, err := air.OpenPTY("a", emulator.RF95, lora.Params{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := lora.NewRF95(openPort(t, p))
	defer m.Close()
	if err := m.Configure(t.Context(), 9, 0); err == nil {
		t.Error("mode 9 accepted")
	}
	p.FailTX(true)
	err = m.Send(t.Context(), []byte("x"))
	if !errors.Is(err, lora.ErrModem) {
		t.Fatalf("tx failure: %v", err)
	}
	t.Logf("status: %v", err)
	p.FailTX(false)
	p.Inject([]byte("+RX 3,zz,1,2\r\n+RX 2,4142,-80,5.5\r\n"))
	pk, err := recvWithin(t, m, 30*time.Second)
	if err != nil || string(pk.Data) != "AB" || pk.RSSI != -80 || pk.SNR != 5.5 {
		t.Fatalf("after a bad +RX: %+v, %v", pk, err)
	}
	if m.Stats().Skipped == 0 {
		t.Error("bad +RX not counted")
	}
	p.Mute(true)
	_, err = m.Info(t.Context())
	if !errors.Is(err, lora.ErrNoAnswer) {
		t.Fatalf("mute modem: %v", err)
	}
	t.Logf("status: %v", err)
	_ = fmt.Sprint()
}
