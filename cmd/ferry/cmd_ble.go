package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ferry/ble"
	"ferry/carriers"
	"ferry/node"
)

// cmdBLE syncs over Bluetooth Low Energy (docs/ble.md): by default it
// advertises the node and syncs with every central that connects, until
// interrupted; with --connect it connects to one node (an address, or
// "scan" for the first ferry node seen) and syncs once.
func cmdBLE(ctx context.Context, e *env, args []string) error {
	fs := flags("ble", e)
	data := dataFlag(fs)
	device := fs.String("device", "hci0", "the Bluetooth adapter, taken from BlueZ while ferry runs")
	connect := fs.String("connect", "", `connect to this node's Bluetooth address (or "scan") and sync once, instead of advertising`)
	idle := fs.Duration("idle", carriers.DefaultIdle, "give up when the peer sends nothing for this long")
	quota := fs.Int64("quota", 0, "take in at most this many MiB of bundles per session (0: no bound)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("ble: no arguments besides flags")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	dev, err := ble.Open(*device, n.ID(), ble.DeviceOptions{Name: n.Name()})
	if err != nil {
		return err
	}
	defer dev.Close()
	opts := carriers.Options{Idle: *idle, MaxReceive: *quota << 20}
	if *connect != "" {
		return bleConnect(ctx, e, n, dev, *connect, opts)
	}
	return bleServe(ctx, e, n, dev, opts)
}

func bleConnect(ctx context.Context, e *env, n *node.Node, dev *ble.Device, addr string, opts carriers.Options) error {
	if addr == "scan" {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		peers, err := dev.Scan(sctx)
		cancel()
		if err != nil {
			return err
		}
		if len(peers) == 0 {
			return errors.New("ble: no ferry node in range")
		}
		addr = peers[0].Addr
		fmt.Fprintf(e.stderr, "found %s (%s)\n", peers[0].Name, addr)
	}
	l, info, err := dev.Dial(ctx, addr, ble.CentralOptions{})
	if err != nil {
		return err
	}
	opts.Peer = info.Node
	rep, err := carriers.Sync(ctx, n, l, opts)
	if rep != nil && rep.Reconcile.Mode != "" {
		printSyncReport(e, rep)
	}
	return err
}

func bleServe(ctx context.Context, e *env, n *node.Node, dev *ble.Device, opts carriers.Options) error {
	fmt.Fprintf(e.stderr, "advertising %s on %s; Ctrl-C to stop\n", n.Name(), dev.Address())
	return acceptBLE(ctx, n, dev, opts, func(rep *carriers.Report, remote string, err error) {
		if rep != nil && rep.Reconcile.Mode != "" {
			printSyncReport(e, rep)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "session with %s: %v\n", remote, err)
		}
	})
}

// acceptBLE advertises the node and syncs with each central that
// connects, one at a time, until ctx is done; done reports each session.
func acceptBLE(ctx context.Context, n *node.Node, dev *ble.Device, opts carriers.Options, done func(*carriers.Report, string, error)) error {
	for {
		// The controller stops advertising when a central connects:
		// advertise afresh for each session.
		actx, stop := context.WithCancel(ctx)
		adv := make(chan error, 1)
		go func() { adv <- dev.Advertise(actx) }()
		l, err := dev.Accept(ctx)
		stop()
		if aerr := <-adv; aerr != nil && ctx.Err() == nil {
			return aerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		rep, err := carriers.Sync(ctx, n, l, opts)
		done(rep, l.Info().Remote, err)
		if ctx.Err() != nil {
			return nil
		}
	}
}
