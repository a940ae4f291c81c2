package lora

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestKISSGolden(t *testing.T) {
	got := AppendKISS(nil, 0x00, []byte{0x01, FEND, 0x02, FESC, 0x03})
	want := []byte{0xC0, 0x00, 0x01, 0xDB, 0xDC, 0x02, 0xDB, 0xDD, 0x03, 0xC0}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestKISSNoise(t *testing.T) {
	var in []byte
	in = append(in, "garbage before"...)
	in = AppendKISS(in, 0x01, []byte{1, 2, 3, 4})
	in = append(in, FEND, FEND)                       // empty frames
	in = append(in, FEND, 0x05, FESC, 0x41, 7, FEND)  // bad escape
	in = append(in, bytes.Repeat([]byte{9}, 2000)...) // overlong
	in = append(in, FEND)
	in = AppendKISS(in, 0x00, []byte("hi"))
	in = append(in, FEND, 0x00, 'c', 'u') // truncated: no FEND
	k := NewKISSReader(bytes.NewReader(in))
	var got []string
	for {
		cmd, data, err := k.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(append([]byte{cmd + '0'}, data...)))
	}
	if len(got) != 2 || got[0] != "1\x01\x02\x03\x04" || got[1] != "0hi" {
		t.Fatalf("frames %q", got)
	}
	if k.Skipped < 2000 {
		t.Errorf("skipped %d bytes", k.Skipped)
	}
}

func FuzzKISS(f *testing.F) {
	f.Add(byte(0), []byte("hello"), []byte{0xC0, 0xDB})
	f.Add(byte(0xC0), []byte{0xDB, 0xDC, 0xDD}, []byte{0xC0, 0x00, 0xDB, 0xC0})
	f.Fuzz(func(t *testing.T, cmd byte, data, noise []byte) {
		if len(data) > 255 {
			data = data[:255]
		}
		// Arbitrary bytes never panic and never yield an oversize frame.
		k := NewKISSReader(bytes.NewReader(noise))
		for {
			_, d, err := k.ReadFrame()
			if err != nil {
				break
			}
			if len(d) >= maxKISS {
				t.Fatalf("frame of %d bytes", len(d))
			}
		}
		// Encode → decode round-trips, after any noise that ends in FEND.
		in := append(append([]byte(nil), noise...), FEND)
		in = AppendKISS(in, cmd, data)
		k = NewKISSReader(bytes.NewReader(in))
		var last []byte
		var lastCmd byte
		for {
			c, d, err := k.ReadFrame()
			if err != nil {
				break
			}
			lastCmd, last = c, append([]byte(nil), d...)
		}
		if lastCmd != cmd || !bytes.Equal(last, data) {
			t.Fatalf("round trip: cmd %x data % x, want %x % x", lastCmd, last, cmd, data)
		}
	})
}
