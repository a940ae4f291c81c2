package main

import (
	"context"
	"flag"
	"log/slog"
	"strings"

	"ferry/node"
	"ferry/usb"
)

// usbFlags are serve's flags for USB sticks.
type usbFlags struct {
	watch *string
}

func addUSBFlags(fs *flag.FlagSet) *usbFlags {
	return &usbFlags{
		watch: fs.String("usb-watch", "/media,/run/media,/mnt",
			"where removable file systems get mounted, comma-separated; sticks mounted there that hold a FERRY folder (or are empty and labelled FERRY) are synced; off disables"),
	}
}

// startUSB watches for sticks in the background and syncs each one as it
// is mounted. It returns the monitor (for status pages) and a function
// that waits for the watcher to stop after ctx is done.
func startUSB(ctx context.Context, n *node.Node, f *usbFlags, log *slog.Logger) (*usb.Monitor, func()) {
	mon := usb.NewMonitor(n, usb.Options{Logger: log}, nil)
	if *f.watch == "off" || *f.watch == "" {
		return mon, func() {}
	}
	w := &usb.Watcher{Prefixes: strings.Split(*f.watch, ",")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := w.Run(ctx, func(ctx context.Context, m usb.Mount) {
			log.Info("stick found", "mount", m.Point, "fs", m.FSType)
			rep, err := mon.Sync(ctx, m.Point)
			if err != nil {
				log.Error("stick sync failed", "mount", m.Point, "err", err)
				return
			}
			log.Info("stick synced", "mount", m.Point, "applied", rep.Applied, "stored", rep.Stored,
				"exported", rep.Exported, "not_fitted", rep.NotFitted, "pruned", rep.Pruned,
				"refused", len(rep.Refused), "left", len(rep.Left))
		})
		if err != nil {
			log.Error("stick watcher stopped", "err", err)
		}
	}()
	return mon, func() { <-done }
}
