package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"ferry/node"
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errQuiet marks an error already reported on stderr.
var errQuiet = errors.New("already reported")

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// env is what a command sees of the world besides its arguments.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "[--data DIR] [--listen ADDR] [--name NAME]", "run the node with its web inbox (initializes an empty data directory)", cmdServe},
		{"init", "[--data DIR] --name NAME", "create a node: keys, database, spool", cmdInit},
		{"card", "[--data DIR] [--loc LAT,LON] [--addr HOST:PORT]", "print this node's signed card", cmdCard},
		{"peer", "add|approve|list [--data DIR] [--as NAME] [CARD|-|NAME]", "trust another node by its card or approve one the network introduced, or list peers", cmdPeer},
		{"network", "[list|announce|locate] [--data DIR] [--json] [LAT,LON]", "show the network directory from announcements, announce this node now, or set its coarse location", cmdNetwork},
		{"user", "add|list [--data DIR] [NAME]", "add a user of this node, or list users", cmdUser},
		{"send", "[--data DIR] --from USER --to USER@NODE TEXT", "queue a direct message", cmdSend},
		{"inbox", "[--data DIR] --user USER [--json]", "show a user's direct messages and their delivery state", cmdInbox},
		{"export", "[--data DIR] --to NODE --out DIR", "write every bundle a peer still lacks into a folder", cmdExport},
		{"import", "[--data DIR] [--json] PATH...", "take in bundle files and folders of them", cmdImport},
		{"bundle", "inspect [--json] FILE", "show a bundle's header, ID, signer and payload", cmdBundle},
		{"usb", "sync [--data DIR] [--json] [--reserve BYTES] PATH", "exchange bundles with a USB stick (or any folder)", cmdUSB},
		{"sync", "[--data DIR] [--json] [--quota MIB] HOST:PORT|PEER", "sync with a peer over the network now (TLS; the peer runs ferry serve)", cmdSync},
		{"ble", "[--data DIR] [--device hci0] [--connect ADDR|scan]", "sync over Bluetooth LE: advertise and serve centrals, or connect to one node (Linux)", cmdBLE},
		{"lora", "[--data DIR] [--port /dev/ttyUSB0] [--modem rnode|rf95] [--region eu868-10] [--first]", "sync once over a LoRa serial modem (RNode or rf95modem) within the region's airtime rules", cmdLoRa},
		{"status", "[--data DIR] [--json]", "show version, disk and store use (with an alarm when space runs low), queues and peers", cmdStatus},
		{"backup", "[--data DIR] --out DIR", "copy identity, a database snapshot, spool and files into DIR, safely while the node runs", cmdBackup},
		{"restore", "--from DIR --data NEWDIR", "check a backup against its manifest and restore it into an empty data directory", cmdRestore},
		{"install", "[--data DIR] [--user USER] [--listen ADDR] [--prefix DIR]", "write a hardened systemd unit and a default config file for ferry serve", cmdInstall},
		{"files", "send|list|sent [--data DIR] [--to PEER] [PATH...]", "send folders and files to a peer over any carrier; list transfers received (filed under DATA/received) or sent", cmdFiles},
		{"archive", "add|list|get|send|propose|endorse|adopt|proposals|history|settings [--data DIR] ...", "keep files and website mirrors in the archive, choose them together, send them to peers as deltas", cmdArchive},
		{"demo", "[--dir DIR] [--port 8080] [--lan-every D] [--stick-every D] [--lora-every D]", "run three communities on this machine (north, river, hill) linked by LAN, a walked stick and an emulated LoRa pair", cmdDemo},
		{"sim", "[--scenario small|bench20] [--mode ferry,epidemic,direct] [--dir DIR] [--json]", "simulate a network of real nodes on a virtual clock and compare routing policies", cmdSim},
		{"version", "[--json]", "print version, commit, build date, Go version and platform", cmdVersion},
	}
}

// run runs ferry with args (without the program name).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	usage(stderr)
	return usageError("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ferry: a delay-tolerant messenger and archive for communities")
	fmt.Fprintln(w, "\nUsage: ferry COMMAND [flags] [args]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n  %-8s   %s\n", c.name, c.summary, "", c.args)
	}
	fmt.Fprintln(w, "\n--data defaults to $FERRY_DATA, then ./ferry-data.")
	fmt.Fprintln(w, "Exit status: 0 ok, 1 failure or a refused bundle, 2 usage error.")
}

// flags makes a flag set for a command that reports its errors on stderr.
func flags(name string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("ferry "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func dataFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("FERRY_DATA")
	if def == "" {
		def = "ferry-data"
	}
	return fs.String("data", def, "the node's data directory")
}

// parse parses flags and positional arguments in any order.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &exitError{code: 0, err: errQuiet}
			}
			return nil, &exitError{code: 2, err: errQuiet}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func openNode(dir string) (*node.Node, error) {
	return node.Open(dir, node.Options{})
}

// openNodeFor opens the node in dir and finds its peer to (a name or an
// ID); the caller closes the node.
func openNodeFor(ctx context.Context, dir, to string) (*node.Node, *node.Peer, error) {
	n, err := openNode(dir)
	if err != nil {
		return nil, nil, err
	}
	p, err := n.Peer(ctx, to)
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	return n, p, nil
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// printJSON writes v as indented JSON: the --json output of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
