package main

import (
	"context"
	"fmt"

	"ferry/usb"
)

func cmdUSB(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "sync" {
		return usageError("usb: want 'sync PATH'")
	}
	fs := flags("usb sync", e)
	data := dataFlag(fs)
	asJSON := fs.Bool("json", false, "print the sync report as JSON")
	reserve := fs.Int64("reserve", 0, "bytes to leave free on the stick (default: 2% of its size, 1-64 MiB)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("usb sync: want the stick's mount point (or any folder)")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	bar := newProgressBar(e.stderr)
	rep, err := usb.Sync(ctx, n, pos[0], usb.Options{Reserve: *reserve, Progress: func(p usb.Progress) {
		bar.update(p.Phase, p.Done, p.Total)
	}})
	bar.done()
	if err != nil {
		if rep != nil {
			printUSBReport(e, rep)
		}
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, rep)
	}
	printUSBReport(e, rep)
	return nil
}

func printUSBReport(e *env, r *usb.Report) {
	w := e.stdout
	fmt.Fprintf(w, "in:   %d applied (%d messages, %d receipts), %d taken on for carrying, %d already seen\n",
		r.Applied, r.Messages, r.Receipts, r.Stored, r.Duplicates)
	fmt.Fprintf(w, "out:  %d bundles written (%s), %d already on the stick\n", r.Exported, humanBytes(r.ExportedBytes), r.OnStick)
	if r.NotFitted > 0 {
		fmt.Fprintf(w, "full: %d bundles (%s) did not fit on the stick; they wait for the next one\n", r.NotFitted, humanBytes(r.NotFittedBytes))
	}
	fmt.Fprintf(w, "gone: %d bundles (%s) pruned: delivered everywhere or expired\n", r.Pruned, humanBytes(r.PrunedBytes))
	fmt.Fprintf(w, "now:  %d bundles (%s) on the stick, %s free; inventories of %v\n", r.Bundles, humanBytes(r.Bytes), humanBytes(r.Free), r.Inventories)
	for _, i := range r.Refused {
		fmt.Fprintf(e.stderr, "refused %s: %s (moved to FERRY/damaged)\n", i.File, i.Reason)
	}
	for _, i := range r.Left {
		fmt.Fprintf(w, "left   %s: %s\n", i.File, i.Reason)
	}
	for _, i := range r.Failed {
		fmt.Fprintf(e.stderr, "failed  %s: %s (left on the stick)\n", i.File, i.Reason)
	}
	for _, i := range r.Ignored {
		fmt.Fprintf(e.stderr, "ignored inventory %s: %s\n", i.File, i.Reason)
	}
}
