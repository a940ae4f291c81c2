package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"ferry/carriers"
	"ferry/lora"
	"ferry/node"
)

// serveLoRa holds serve's LoRa flags: those of 'ferry lora' with a
// "lora-" prefix, and the pause between contacts.
type serveLoRa struct {
	*loraFlags
	every *time.Duration
}

func addServeLoRaFlags(fs *flag.FlagSet) *serveLoRa {
	return &serveLoRa{
		loraFlags: addLoRaFlags(fs, "lora-", ""),
		every:     fs.Duration("lora-every", 5*time.Minute, "with --lora-first: the pause between the end of one LoRa session and the start of the next"),
	}
}

// startLoRa runs serve's LoRa carrier when --lora-port is set: sessions
// with the node at the other end of the radio link, one after another,
// on one airtime budget. The end with --lora-first starts a session, then
// pauses --lora-every; the other end listens all the time. It returns the
// radio's monitor (nil when off) and a function that waits for the
// carrier to stop after ctx is done.
func startLoRa(ctx context.Context, n *node.Node, f *serveLoRa, stats *carriers.Stats, log *slog.Logger) (*lora.Monitor, func(), error) {
	if *f.port == "" {
		return nil, func() {}, nil
	}
	p, reg, err := f.settings("lora-")
	if err != nil {
		return nil, nil, err
	}
	m, closer, err := f.openModem(ctx, p, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("LoRa modem on %s: %w (see docs/lora.md)", *f.port, err)
	}
	budget := lora.NewBudget(reg)
	mon := lora.NewMonitor(lora.Status{Port: *f.port, Modem: *f.modem, Region: reg.Name, Params: p, State: "starting"}, m, budget)
	log.Info("LoRa radio ready", "port", *f.port, "modem", *f.modem, "region", reg.Name, "sf", p.SF, "bw", p.Bandwidth,
		"frame_airtime", lora.TimeOnAir(p, lora.MaxFrame).Round(time.Millisecond))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer closer.Close()
		failures := 0
		for ctx.Err() == nil {
			if *f.first {
				mon.SetState("starting a session")
			} else {
				mon.SetState("listening")
			}
			l := lora.NewLink(lora.LinkConfig{Modem: m, Params: p, Budget: budget, Initiator: *f.first, Remote: *f.port})
			mon.SetLink(l)
			stop := context.AfterFunc(ctx, l.Abort) // shutting down: no waiting for the turn
			rep, err := carriers.Sync(ctx, n, l, carriers.Options{Idle: *f.idle, Logger: log, Stats: stats})
			stop()
			l.Close()
			mon.SetLink(nil)
			reached := rep != nil && rep.Reconcile.Mode != ""
			peer := ""
			if rep != nil {
				peer = rep.PeerName
			}
			if ctx.Err() != nil {
				break
			}
			mon.Done(peer, reached, err)
			switch {
			case err != nil && errors.Is(err, lora.ErrModem):
				log.Warn("LoRa modem error", "err", err)
			case err != nil && reached:
				log.Warn("LoRa session failed", "peer", peer, "err", err)
			case err != nil:
				log.Debug("no LoRa session", "err", err)
			default:
				log.Info("LoRa session", "peer", peer, "sent", rep.Sent.Bundles, "received", rep.Received.Bundles,
					"airtime", budget.Used(time.Now()).Round(time.Millisecond))
			}
			// A modem that fails at once (unplugged, dead) is retried
			// less and less often, up to every 5 minutes.
			if err != nil && !reached {
				failures++
			} else {
				failures = 0
			}
			pause := min(time.Second<<min(failures, 9), 5*time.Minute)
			if *f.first {
				pause = max(pause, *f.every)
			}
			mon.SetState("waiting for the next contact")
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
		mon.SetState("stopped")
	}()
	return mon, func() { <-done }, nil
}
