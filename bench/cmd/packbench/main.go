// Command packbench packs a directory into one ferry bundle and opens it
// again, for bench/pack_vs_pipeline.sh to time as a whole process (wall
// time, peak RSS) against cp and tar | zstd | age on the same data.
//
//	packbench pack -r RECIPIENT DIR FILE    every regular file under DIR → bundle FILE
//	packbench open -i IDENTITY FILE DIR     bundle FILE → files under DIR
//
// RECIPIENT is an age X25519 recipient (age1...); IDENTITY a file in
// age-keygen's format. The bundle is signed by a throwaway key. Each file
// travels as RecordFile records: a FileHeader, then its bytes, in several
// records when it is larger than one record may be. The packing is
// package packtree's, which go test -bench also measures in-process in
// package bundle; it is not ferry's archive format.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"filippo.io/age"

	"ferry/bench/packtree"
	"ferry/bundle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "packbench:", err)
		os.Exit(1)
	}
}

const usage = `usage: packbench pack -r RECIPIENT DIR FILE
       packbench open -i IDENTITY FILE DIR`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fl := flag.NewFlagSet("packbench "+args[0], flag.ContinueOnError)
	fl.SetOutput(stderr)
	recipient := fl.String("r", "", "age recipient to pack for")
	identity := fl.String("i", "", "age identity file to open with")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if fl.NArg() != 2 {
		return errors.New(usage)
	}
	switch args[0] {
	case "pack":
		r, err := age.ParseX25519Recipient(*recipient)
		if err != nil {
			return fmt.Errorf("-r: %w", err)
		}
		size, err := packTreeFile(ctx, fl.Arg(1), fl.Arg(0), r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "packed %s into %s: %d bytes\n", fl.Arg(0), fl.Arg(1), size)
		return nil
	case "open":
		f, err := os.Open(*identity)
		if err != nil {
			return fmt.Errorf("-i: %w", err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("-i: %w", err)
		}
		if err := os.MkdirAll(fl.Arg(1), 0o755); err != nil {
			return err
		}
		return openTreeFile(ctx, fl.Arg(0), fl.Arg(1), ids...)
	}
	return errors.New(usage)
}

// packTreeFile packs root into a new bundle at path and returns its size.
func packTreeFile(ctx context.Context, path, root string, r age.Recipient) (int64, error) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := bundle.Header{Kind: bundle.KindArchive, Source: bundle.NodeID(pub), Dest: bundle.Destination{Type: bundle.DestEveryone}, Seq: 1, Created: time.Now()}
	w, err := bundle.NewWriter(f, h, key, r)
	if err != nil {
		return 0, err
	}
	if err := packtree.Pack(ctx, w, root, bundle.DefaultMaxRecordSize); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Size(), f.Close()
}

// openTreeFile verifies the bundle at path, decrypts it and writes its
// files under root.
func openTreeFile(ctx context.Context, path, root string, ids ...age.Identity) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := bundle.NewReader(bufio.NewReaderSize(f, packtree.BufSize), bundle.Limits{})
	if err != nil {
		return err
	}
	rr, err := rd.Open(ids...)
	if err != nil {
		return err
	}
	defer rr.Close()
	return packtree.Open(ctx, rr, root)
}
