package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"ferry/archive"
)

const archiveCommands = "add, list, get, send, propose, endorse, adopt, withdraw, proposals, history or settings"

// cmdArchive runs "ferry archive add|list|get|send".
func cmdArchive(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("archive: want %s", archiveCommands)
	}
	switch args[0] {
	case "add":
		return archiveAdd(ctx, e, args[1:])
	case "list":
		return archiveList(ctx, e, args[1:])
	case "get":
		return archiveGet(ctx, e, args[1:])
	case "send":
		return archiveSend(ctx, e, args[1:])
	case "propose":
		return archivePropose(ctx, e, args[1:])
	case "endorse", "adopt", "withdraw":
		return archiveDecide(ctx, e, args[0], args[1:])
	case "proposals":
		return archiveProposals(ctx, e, args[1:])
	case "history":
		return archiveHistory(ctx, e, args[1:])
	case "settings":
		return archiveSettings(ctx, e, args[1:])
	}
	return usageError("archive: unknown subcommand %q (want %s)", args[0], archiveCommands)
}

func archiveAdd(ctx context.Context, e *env, args []string) error {
	fs := flags("archive add", e)
	data := dataFlag(fs)
	it := itemFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (it.meta.Title == "" && *it.item == "") {
		return usageError("archive add: want PATH --title T (or --item ID for a new version)")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	item, err := it.resolve(ctx, n)
	if err != nil {
		return err
	}
	rep, err := archive.Add(ctx, n, pos[0], item, it.meta)
	if err != nil {
		return err
	}
	m := rep.Manifest
	fmt.Fprintf(e.stdout, "added %s version %d: %q, %d files, %d bytes, %d chunks (%d new, %d bytes)\n",
		hex.EncodeToString(m.Item[:]), m.Version, m.Title, len(m.Files), m.Size(), len(m.Chunks), rep.NewChunks, rep.NewBytes)
	for _, s := range rep.Skipped {
		fmt.Fprintf(e.stderr, "skipped %s: not a regular file\n", s)
	}
	return nil
}

func archiveList(ctx context.Context, e *env, args []string) error {
	fs := flags("archive list", e)
	data := dataFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	items, err := archive.List(ctx, n)
	if err != nil {
		return err
	}
	if *asJSON {
		if items == nil {
			items = []archive.Item{}
		}
		return printJSON(e.stdout, items)
	}
	for _, it := range items {
		state := ""
		if !it.Complete {
			state = " (incomplete)"
		}
		fmt.Fprintf(e.stdout, "%s v%d  %s  %d files, %d bytes%s\n", it.ID, it.Version, it.Title, it.Files, it.Size, state)
	}
	return nil
}

func archiveGet(ctx context.Context, e *env, args []string) error {
	fs := flags("archive get", e)
	data := dataFlag(fs)
	out := fs.String("out", "", "the folder to write the files into (absent or empty)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usageError("archive get: want ITEM --out DIR")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	item, err := archive.ResolveItem(ctx, n, pos[0])
	if err != nil {
		return err
	}
	m, err := archive.Get(ctx, n, item, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %q version %d: %d files, %d bytes, to %s\n", m.Title, m.Version, len(m.Files), m.Size(), *out)
	return nil
}

func archiveSend(ctx context.Context, e *env, args []string) error {
	fs := flags("archive send", e)
	data := dataFlag(fs)
	to := fs.String("to", "", "the peer to send the item to (name or ID)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *to == "" {
		return usageError("archive send: want ITEM --to NODE")
	}
	n, p, err := openNodeFor(ctx, *data, *to)
	if err != nil {
		return err
	}
	defer n.Close()
	item, err := archive.ResolveItem(ctx, n, pos[0])
	if err != nil {
		return err
	}
	rep, err := archive.Send(ctx, n, item, p.ID)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	fmt.Fprintf(e.stdout, "queued %d bundles (%d bytes) for %s: %d chunks (%d bytes) and the manifest (%d bytes); %d chunks it holds already\n",
		rep.Bundles, rep.BundleBytes, p.Name, rep.Chunks, rep.ChunkBytes, rep.ManifestBytes, rep.Held)
	if rep.BaseVersion > 0 {
		fmt.Fprintf(e.stdout, "patch-from version %d: %d files as patches and %d whole (%d bytes), %d chunks rebuilt by %s; delta record %d bytes\n",
			rep.BaseVersion, rep.Patches, rep.Literals, rep.PatchBytes, rep.Rebuilt, p.Name, rep.DeltaBytes)
	}
	return nil
}
