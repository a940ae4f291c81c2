package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tarm/serial"

	"ferry/carriers"
	"ferry/lora"
)

// cmdLoRa syncs once with the node at the other end of a LoRa link,
// through a serial modem (docs/lora.md). Both ends run it; exactly one
// passes --first, to hold the first turn of the half-duplex link.
func cmdLoRa(ctx context.Context, e *env, args []string) error {
	fs := flags("lora", e)
	data := dataFlag(fs)
	port := fs.String("port", "/dev/ttyUSB0", "the modem's serial port")
	modem := fs.String("modem", "rnode", "the modem family: rnode (KISS) or rf95 (rf95modem AT commands)")
	region := fs.String("region", "eu868-10", "the airtime rules: eu868 (1 %), eu868-10 (10 %, 869.4–869.65 MHz) or us915 (400 ms dwell)")
	freq := fs.Int64("freq", 869_525_000, "frequency in Hz")
	sf := fs.Int("sf", 9, "spreading factor, 7..12 (rnode)")
	bw := fs.Int("bw", 125000, "bandwidth in Hz (rnode)")
	cr := fs.Int("cr", 5, "coding rate 4/N, N in 5..8 (rnode)")
	txp := fs.Int("txp", 14, "transmit power in dBm (rnode)")
	mode := fs.Int("rf95-mode", 0, "rf95modem AT+MODE preset, 0..4 (rf95)")
	first := fs.Bool("first", false, "hold the first turn (exactly one end of the link)")
	idle := fs.Duration("idle", 10*time.Minute, "give up when the peer sends nothing for this long")
	quota := fs.Int64("quota", 0, "take in at most this many MiB of bundles per session (0: no bound)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("lora: no arguments besides flags")
	}
	reg, err := lora.RegionByName(*region)
	if err != nil {
		return usageError("%v", err)
	}
	p := lora.Params{SF: *sf, Bandwidth: *bw, CR: *cr - 4, TXPower: *txp, Frequency: *freq}
	switch *modem {
	case "rnode":
	case "rf95":
		if *mode < 0 || *mode >= len(lora.RF95Modes) {
			return usageError("lora: --rf95-mode %d outside 0..%d", *mode, len(lora.RF95Modes)-1)
		}
		m := lora.RF95Modes[*mode]
		p.SF, p.Bandwidth, p.CR = m.SF, m.Bandwidth, m.CR
	default:
		return usageError("lora: --modem %q: want rnode or rf95", *modem)
	}
	if err := p.Validate(); err != nil {
		return usageError("%v", err)
	}
	if err := reg.Check(p, lora.MaxFrame); err != nil {
		return fmt.Errorf("%w (a smaller spreading factor fits)", err)
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	sp, err := serial.OpenPort(&serial.Config{Name: *port, Baud: 115200, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("lora: open %s: %w", *port, err)
	}
	defer sp.Close()
	var m lora.Modem
	switch *modem {
	case "rnode":
		r := lora.NewRNode(sp)
		defer r.Close()
		if err := r.Configure(ctx, p, reg); err != nil {
			return err
		}
		m = r
	case "rf95":
		r := lora.NewRF95(sp)
		defer r.Close()
		if err := r.Configure(ctx, *mode, *freq); err != nil {
			return err
		}
		m = r
	}
	fmt.Fprintf(e.stderr, "lora: %s on %s, SF%d/%d kHz, %s; a full frame takes %v on air\n",
		*modem, *port, p.SF, p.Bandwidth/1000, reg.Name, lora.TimeOnAir(p, lora.MaxFrame).Round(time.Millisecond))
	l := lora.NewLink(lora.LinkConfig{Modem: m, Params: p, Budget: lora.NewBudget(reg), Initiator: *first, Remote: *port})
	rep, err := carriers.Sync(ctx, n, l, carriers.Options{Idle: *idle, MaxReceive: *quota << 20})
	l.Close()
	if rep != nil && rep.Reconcile.Mode != "" {
		printSyncReport(e, rep)
	}
	return err
}
