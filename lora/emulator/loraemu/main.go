// Command loraemu opens emulated LoRa modems on pseudo-terminals and
// prints their tty paths, for trying `ferry lora` without radios:
//
//	go run ./lora/emulator/loraemu -modem rnode -n 2 -loss 0.1
//	ferry lora --data A --port /dev/pts/5 --first &
//	ferry lora --data B --port /dev/pts/6
//
// It runs until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"ferry/lora"
	"ferry/lora/emulator"
)

func main() {
	modem := flag.String("modem", "rnode", "rnode or rf95")
	n := flag.Int("n", 2, "how many modems")
	loss := flag.Float64("loss", 0, "random frame loss, 0..1")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var lm emulator.LossModel
	if *loss > 0 {
		lm = emulator.Random{P: *loss}
	}
	air := emulator.New(emulator.Config{Loss: lm, Seed: 1})
	for i := range *n {
		p, err := air.OpenPTY(fmt.Sprint(i), emulator.Protocol(*modem), lora.Params{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer p.Close()
		fmt.Println(p.Path)
	}
	<-ctx.Done()
}
