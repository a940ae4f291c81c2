package lora

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// echoModem answers every KISS command with the same frame (DETECT with
// 0x46), recording what the host wrote.
type echoModem struct {
	in    *io.PipeReader // host → modem
	out   *io.PipeWriter // modem → host
	wrote bytes.Buffer
	alter byte // a command whose echo is altered
}

func newEcho(t *testing.T, alter byte) (*echoModem, io.ReadWriter) {
	hr, mw := io.Pipe()
	mr, hw := io.Pipe()
	e := &echoModem{in: mr, out: mw, alter: alter}
	go func() {
		k := NewKISSReader(io.TeeReader(mr, &e.wrote))
		for {
			cmd, data, err := k.ReadFrame()
			if err != nil {
				return
			}
			d := append([]byte(nil), data...)
			if cmd == rnDetect {
				d = []byte{rnDetectResp}
			}
			if cmd == e.alter {
				d[0]++
			}
			mw.Write(AppendKISS(nil, cmd, d))
		}
	}()
	t.Cleanup(func() { mr.Close(); mw.Close() })
	return e, struct {
		io.Reader
		io.Writer
	}{hr, hw}
}

func TestRNodeGolden(t *testing.T) {
	e, rw := newEcho(t, 0xFF)
	r := NewRNode(rw)
	defer r.Close()
	p := Params{SF: 9, Bandwidth: 125000, CR: 1, TXPower: 14, Frequency: 869_525_000}
	if err := r.Configure(t.Context(), p, EU868Sub10); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"c00873c0",       // detect
		"c00133d3e608c0", // frequency 869525000 Hz
		"c0020001e848c0", // bandwidth 125000 Hz
		"c0030ec0",       // tx power 14 dBm
		"c00409c0",       // SF 9
		"c00505c0",       // CR 4/5
		"c00b03e8c0",     // short-term airtime lock 10.00 %
		"c00c03e8c0",     // long-term airtime lock 10.00 %
		"c00601c0",       // radio on
	}, "")
	if got := hex.EncodeToString(e.wrote.Bytes()); got != want {
		t.Fatalf("host wrote\n%s\nwant\n%s", got, want)
	}
}

func TestRNodeEchoMismatch(t *testing.T) {
	_, rw := newEcho(t, rnSF)
	r := NewRNode(rw)
	defer r.Close()
	err := r.Configure(t.Context(), Params{SF: 9, Bandwidth: 125000, CR: 1}, US915)
	if !errors.Is(err, ErrSetting) {
		t.Fatalf("got %v", err)
	}
	t.Logf("status: %v", err)
}
