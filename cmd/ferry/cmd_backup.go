package main

import (
	"context"
	"fmt"

	"ferry/node"
)

func cmdBackup(ctx context.Context, e *env, args []string) error {
	fs := flags("backup", e)
	data := dataFlag(fs)
	out := fs.String("out", "", "the folder to write the backup into, empty or absent (e.g. on a USB stick)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError("backup: --out DIR is required")
	}
	n, err := openNode(*data)
	if err != nil {
		return err
	}
	defer n.Close()
	m, err := n.Backup(ctx, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up node %s (%s): %d files, %s, into %s\n", m.Node, m.ID[:12], len(m.Files), humanBytes(m.Bytes()), *out)
	if len(m.Missing) > 0 {
		fmt.Fprintf(e.stderr, "ferry: backup: %d bodies were removed while the backup ran (delivered or deleted); listed under \"missing\" in %s\n", len(m.Missing), node.ManifestFile)
	}
	return nil
}

func cmdRestore(ctx context.Context, e *env, args []string) error {
	fs := flags("restore", e)
	data := fs.String("data", "", "the new data directory, empty or absent")
	from := fs.String("from", "", "the backup folder (it holds "+node.ManifestFile+")")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" || *data == "" {
		return usageError("restore: --from DIR and --data NEWDIR are required")
	}
	m, err := node.Restore(*from, *data)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored node %s (%s) from the backup of %s: %d files checked, %s, into %s\n",
		m.Node, m.ID[:12], m.Created.Format("2006-01-02 15:04 MST"), len(m.Files), humanBytes(m.Bytes()), *data)
	fmt.Fprintf(e.stdout, "new bundles and messages are numbered from %d, past any number the node may have used since the backup\n", m.SeqFloor)
	return nil
}
