package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"ferry/transfer"
)

// cmdFiles runs "ferry files send|list|sent".
func cmdFiles(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("files: want send, list or sent")
	}
	switch args[0] {
	case "send":
		return filesSend(ctx, e, args[1:])
	case "list":
		return listCommand(ctx, e, args[1:], "files list", func(*flag.FlagSet) {}, transfer.ListIn, inLine)
	case "sent":
		return listCommand(ctx, e, args[1:], "files sent", func(*flag.FlagSet) {}, transfer.ListOut, outLine)
	}
	return usageError("files: unknown subcommand %q (want send, list or sent)", args[0])
}

// filesSend runs "ferry files send --to PEER PATH...".
func filesSend(ctx context.Context, e *env, args []string) error {
	fs := flags("files send", e)
	data := dataFlag(fs)
	to := fs.String("to", "", "the peer the files are for (name or ID)")
	name := fs.String("name", "", "the transfer's name, the folder it arrives in (default: the base name of PATH)")
	note := fs.String("note", "", "a note for the receiver")
	partMiB := fs.Int64("part-mib", transfer.DefaultPartSize>>20, "file MiB per bundle: a stick or link takes a transfer part by part")
	asJSON := fs.Bool("json", false, "print JSON")
	paths, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *to == "" || len(paths) == 0 {
		return usageError("files send: want --to PEER PATH...")
	}
	n, p, err := openNodeFor(ctx, *data, *to)
	if err != nil {
		return err
	}
	defer n.Close()
	bar := newProgressBar(e.stderr)
	rep, err := transfer.Send(ctx, n, p.ID, paths, transfer.SendOptions{Name: *name, Note: *note, PartSize: *partMiB << 20,
		Progress: func(done, total int64) { bar.update("packing", done, total) }})
	bar.done()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, rep)
	}
	fmt.Fprintf(e.stdout, "queued transfer %s %q for %s: %d files (%s) in %d bundles (%s); carry them with 'ferry usb sync' or any link\n",
		rep.IDHex[:12], rep.Name, p.Name, rep.Files, humanBytes(rep.Bytes), rep.Parts, humanBytes(rep.BundleBytes))
	for _, s := range rep.Skipped {
		fmt.Fprintf(e.stdout, "skipped %s (not a regular file)\n", s)
	}
	return nil
}

func inLine(t transfer.In) string {
	state := "complete"
	if !t.Complete {
		state = fmt.Sprintf("%d of %d parts", t.GotParts, t.Parts)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  from %-10s %q  %d files  %s  %s  %s  %s", t.ID[:12], t.From, t.Name, t.GotFiles,
		humanBytes(t.GotBytes), state, t.Last.Format("2006-01-02 15:04"), t.Folder)
	if t.Note != "" {
		fmt.Fprintf(&b, "  note: %s", t.Note)
	}
	return b.String()
}

func outLine(t transfer.Out) string {
	return fmt.Sprintf("%s  to %-10s %q  %d files  %s  %d/%d parts delivered  %s", t.ID[:12], t.To, t.Name, t.Files,
		humanBytes(t.Bytes), t.Delivered, t.Parts, t.Created.Format("2006-01-02 15:04"))
}
