package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"ferry/ble"
	"ferry/carriers"
	"ferry/node"
)

func addBLEFlags(fs *flag.FlagSet) *string {
	return fs.String("ble", "", "a Bluetooth adapter (e.g. hci0) to advertise this node on and sync with every central that connects (Linux; the adapter is taken from BlueZ); empty: off")
}

// startBLE runs the BLE carrier of serve in the background when device is
// set. It returns a function that waits for it to stop after ctx is done.
func startBLE(ctx context.Context, n *node.Node, device string, stats *carriers.Stats, log *slog.Logger) (func(), error) {
	if device == "" {
		return func() {}, nil
	}
	dev, err := ble.Open(device, n.ID(), ble.DeviceOptions{Name: n.Name()})
	if err != nil {
		return nil, fmt.Errorf("bluetooth adapter %s: %w (see docs/ble.md)", device, err)
	}
	log.Info("advertising over Bluetooth LE", "device", device, "address", dev.Address())
	done := make(chan struct{})
	go func() {
		defer close(done)
		opts := carriers.Options{Logger: log, Stats: stats}
		err := acceptBLE(ctx, n, dev, opts, func(rep *carriers.Report, remote string, err error) {
			if err != nil {
				log.Warn("BLE session failed", "remote", remote, "err", err)
			} else if rep != nil {
				log.Info("BLE session", "peer", rep.PeerName, "sent", rep.Sent.Bundles, "received", rep.Received.Bundles)
			}
		})
		if err != nil {
			log.Error("BLE carrier stopped", "err", err)
		}
	}()
	return func() { <-done; dev.Close() }, nil
}
