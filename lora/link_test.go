package lora_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"testing/synctest"

	"ferry/lora"
	"ferry/lora/emulator"
)

func linkPair(loss emulator.LossModel, reg lora.Region) (*lora.Link, *lora.Link, func()) {
	air := emulator.New(emulator.Config{Loss: loss, Seed: 5})
	ma, _ := air.Modem("a", sf9)
	mb, _ := air.Modem("b", sf9)
	a := lora.NewLink(lora.LinkConfig{Modem: ma, Params: sf9, Budget: lora.NewBudget(reg), Initiator: true, Remote: "b"})
	b := lora.NewLink(lora.LinkConfig{Modem: mb, Params: sf9, Budget: lora.NewBudget(reg), Remote: "a"})
	return a, b, func() { ma.Close(); mb.Close() }
}

func TestLinkBothWays(t *testing.T) {
	for _, tc := range []struct {
		name string
		loss emulator.LossModel
	}{{"clean", nil}, {"random10", emulator.Random{P: 0.10}}, {"bursty30", emulator.Bursty(0.30, 4)}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b, stop := linkPair(tc.loss, lora.EU868Sub10)
				defer stop()
				msg := func(who string, i int) []byte {
					return bytes.Repeat([]byte(fmt.Sprintf("%s%03d", who, i)), 1+i*37%300)
				}
				const n = 20
				errc := make(chan error, 2)
				for _, e := range []struct {
					l        *lora.Link
					me, peer string
				}{{a, "a", "b"}, {b, "b", "a"}} {
					go func() {
						for i := range n {
							if err := e.l.Send(msg(e.me, i)); err != nil {
								errc <- err
								return
							}
						}
						for i := range n {
							f, err := e.l.Recv()
							if err != nil {
								errc <- fmt.Errorf("%s: frame %d: %w", e.me, i, err)
								return
							}
							if !bytes.Equal(f, msg(e.peer, i)) {
								errc <- fmt.Errorf("%s: frame %d: %d bytes differ", e.me, i, len(f))
								return
							}
						}
						errc <- nil
					}()
				}
				for range 2 {
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
				}
				done := make(chan struct{})
				go func() { a.Close(); close(done) }()
				if _, err := b.Recv(); err != io.EOF {
					t.Errorf("after the peer's Close: %v", err)
				}
				b.Close()
				<-done
			})
		})
	}
}
