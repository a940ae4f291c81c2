package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tarm/serial"

	"ferry/carriers"
	"ferry/lora"
)

// loraFlags are the radio settings of 'ferry lora' and of serve's LoRa
// carrier (there with a "lora-" prefix: --lora-port, --lora-modem...).
type loraFlags struct {
	port, modem, region *string
	freq                *int64
	sf, bw, cr, txp     *int
	mode                *int
	first               *bool
	idle                *time.Duration
}

func addLoRaFlags(fs *flag.FlagSet, prefix, defPort string) *loraFlags {
	return &loraFlags{
		port:   fs.String(prefix+"port", defPort, "the modem's serial port"),
		modem:  fs.String(prefix+"modem", "rnode", "the modem family: rnode (KISS) or rf95 (rf95modem AT commands)"),
		region: fs.String(prefix+"region", "eu868-10", "the airtime rules: eu868 (1 %), eu868-10 (10 %, 869.4–869.65 MHz) or us915 (400 ms dwell)"),
		freq:   fs.Int64(prefix+"freq", 869_525_000, "frequency in Hz"),
		sf:     fs.Int(prefix+"sf", 9, "spreading factor, 7..12 (rnode)"),
		bw:     fs.Int(prefix+"bw", 125000, "bandwidth in Hz (rnode)"),
		cr:     fs.Int(prefix+"cr", 5, "coding rate 4/N, N in 5..8 (rnode)"),
		txp:    fs.Int(prefix+"txp", 14, "transmit power in dBm (rnode)"),
		mode:   fs.Int(prefix+"rf95-mode", 0, "rf95modem AT+MODE preset, 0..4 (rf95)"),
		first:  fs.Bool(prefix+"first", false, "hold the first turn of the half-duplex link (exactly one end of it)"),
		idle:   fs.Duration(prefix+"idle", 3*time.Hour, "give up a session when no session frame arrives for this long (under a duty cycle a turn may wait an hour for airtime; the link itself notices a silent peer)"),
	}
}

// settings checks the flags and returns the radio parameters and region.
func (f *loraFlags) settings(flagPrefix string) (lora.Params, lora.Region, error) {
	reg, err := lora.RegionByName(*f.region)
	if err != nil {
		return lora.Params{}, reg, usageError("%v", err)
	}
	p := lora.Params{SF: *f.sf, Bandwidth: *f.bw, CR: *f.cr - 4, TXPower: *f.txp, Frequency: *f.freq}
	switch *f.modem {
	case "rnode":
	case "rf95":
		if *f.mode < 0 || *f.mode >= len(lora.RF95Modes) {
			return p, reg, usageError("--%srf95-mode %d outside 0..%d", flagPrefix, *f.mode, len(lora.RF95Modes)-1)
		}
		m := lora.RF95Modes[*f.mode]
		p.SF, p.Bandwidth, p.CR = m.SF, m.Bandwidth, m.CR
	default:
		return p, reg, usageError("--%smodem %q: want rnode or rf95", flagPrefix, *f.modem)
	}
	if err := p.Validate(); err != nil {
		return p, reg, usageError("%v", err)
	}
	if err := reg.Check(p, lora.MaxFrame); err != nil {
		return p, reg, fmt.Errorf("%w (a smaller spreading factor fits)", err)
	}
	return p, reg, nil
}

// openModem opens the serial port and configures the modem on it. The
// returned closer stops the driver and closes the port.
func (f *loraFlags) openModem(ctx context.Context, p lora.Params, reg lora.Region) (lora.Modem, io.Closer, error) {
	sp, err := serial.OpenPort(&serial.Config{Name: *f.port, Baud: 115200, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		return nil, nil, fmt.Errorf("lora: open %s: %w", *f.port, err)
	}
	var m lora.Modem
	switch *f.modem {
	case "rnode":
		r := lora.NewRNode(sp)
		err = r.Configure(ctx, p, reg)
		m = r
	default:
		r := lora.NewRF95(sp)
		err = r.Configure(ctx, *f.mode, *f.freq)
		m = r
	}
	c := closers{m, sp}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return m, c, nil
}

type closers []io.Closer

func (c closers) Close() error {
	for _, x := range c {
		x.Close()
	}
	return nil
}

// cmdLoRa syncs once with the node at the other end of a LoRa link,
// through a serial modem (docs/lora.md). Both ends run it; exactly one
// passes --first, to hold the first turn of the half-duplex link.
func cmdLoRa(ctx context.Context, e *env, args []string) error {
	fs := flags("lora", e)
	data := dataFlag(fs)
	lf := addLoRaFlags(fs, "", "/dev/ttyUSB0")
	quota := fs.Int64("quota", 0, "take in at most this many MiB of bundles per session (0: no bound)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("lora: no arguments besides flags")
	}
	p, reg, err := lf.settings("")
	if err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	m, closer, err := lf.openModem(ctx, p, reg)
	if err != nil {
		return err
	}
	defer closer.Close()
	fmt.Fprintf(e.stderr, "lora: %s on %s, SF%d/%d kHz, %s; a full frame takes %v on air\n",
		*lf.modem, *lf.port, p.SF, p.Bandwidth/1000, reg.Name, lora.TimeOnAir(p, lora.MaxFrame).Round(time.Millisecond))
	l := lora.NewLink(lora.LinkConfig{Modem: m, Params: p, Budget: lora.NewBudget(reg), Initiator: *lf.first, Remote: *lf.port})
	stop := context.AfterFunc(ctx, l.Abort) // interrupted: no waiting for the turn
	rep, err := carriers.Sync(ctx, n, l, carriers.Options{Idle: *lf.idle, MaxReceive: *quota << 20})
	stop()
	l.Close()
	if rep != nil && rep.Reconcile.Mode != "" {
		printSyncReport(e, rep)
	}
	return err
}
