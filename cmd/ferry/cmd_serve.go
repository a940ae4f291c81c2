package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"ferry/node"
	"ferry/web"
)

// defaultListen keeps a fresh server on this machine until its admin
// chooses to open it to the network (--listen 0.0.0.0:80).
const defaultListen = "127.0.0.1:8080"

// serveOptions are the flags of ferry serve.
type serveOptions struct {
	data, config, listen, name *string
	maxUpload, quota           *int64
	maxArchive                 *int64 // archive proposals (web/archive.go)
	verbose                    *bool
	live                       *carrierFlags  // peers: TLS listener, schedule, LAN discovery (cmd_sync.go)
	sticks                     *usbFlags      // USB sticks: mount watcher (serve_usb.go)
	bleDevice                  *string        // Bluetooth LE (serve_ble.go)
	radio                      *serveLoRa     // LoRa modem (serve_lora.go)
	alarm                      *alarmFlags    // the disk alarm (cmd_status.go)
	announce                   *announceFlags // node announcements (cmd_network.go)
}

// serveFlags makes serve's flag set. Every flag of it can be set in the
// config file too (config.go): ferry install writes the default file from
// this set, and ferry status reads serve's file against it.
func serveFlags(e *env) (*flag.FlagSet, *serveOptions) {
	fs := flags("serve", e)
	o := &serveOptions{}
	o.data = dataFlag(fs)
	o.config = configFlag(fs)
	o.listen = fs.String("listen", defaultListen, "the address to serve the web inbox on, e.g. 0.0.0.0:80 for the whole network")
	o.name = fs.String("name", "", "the node's name when serve initializes a new data directory (default: this machine's host name)")
	o.maxUpload = fs.Int64("max-upload", web.DefaultMaxUpload>>20, "the largest file a member may upload, in MiB")
	o.maxArchive = fs.Int64("max-archive-upload", web.DefaultMaxArchiveUpload>>20, "the largest proposal for the archive (files, folder, .zip/.tar) a member may upload, in MiB")
	o.quota = fs.Int64("quota", web.DefaultQuota>>20, "what each member may store, in MiB")
	o.verbose = fs.Bool("verbose", false, "log every request")
	fs.BoolVar(o.verbose, "v", false, "short for --verbose")
	o.live = addCarrierFlags(fs)
	o.sticks = addUSBFlags(fs)
	o.bleDevice = addBLEFlags(fs)
	o.radio = addServeLoRaFlags(fs)
	o.alarm = addAlarmFlags(fs)
	o.announce = addAnnounceFlags(fs)
	return fs, o
}

func cmdServe(ctx context.Context, e *env, args []string) error {
	started := time.Now()
	fs, o := serveFlags(e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := applyConfig(fs, fs); err != nil {
		return err
	}
	data, listen, name, maxUpload, quota, verbose := o.data, o.listen, o.name, o.maxUpload, o.quota, o.verbose
	live, sticks, bleDevice, radio := o.live, o.sticks, o.bleDevice, o.radio
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	n, err := openOrInit(*data, *name, e, log)
	if err != nil {
		return err
	}
	defer n.Close()
	// The first announcement is made before anything else runs, the next
	// ones in the background (cmd_network.go).
	served := servedCarriers(live.listen != "off", *sticks.watch != "off" && *sticks.watch != "", *bleDevice != "", *radio.port != "")
	annCtx, stopAnn := context.WithCancel(ctx)
	annDone := startAnnouncer(annCtx, n, o.announce, served, log)
	defer func() { stopAnn(); annDone() }()
	links, err := startLiveLinks(ctx, n, live, e, log)
	if err != nil {
		return err
	}
	defer links.Close()
	usbCtx, stopUSB := context.WithCancel(ctx)
	monitor, usbDone := startUSB(usbCtx, n, sticks, log)
	defer func() { stopUSB(); usbDone() }()
	bleCtx, stopBLE := context.WithCancel(ctx)
	bleDone, err := startBLE(bleCtx, n, *bleDevice, links.Stats, log)
	if err != nil {
		stopBLE()
		return err
	}
	defer func() { stopBLE(); bleDone() }()
	loraCtx, stopLoRa := context.WithCancel(ctx)
	mon, loraDone, err := startLoRa(loraCtx, n, radio, links.Stats, log)
	if err != nil {
		stopLoRa()
		return err
	}
	defer func() { stopLoRa(); loraDone() }()
	var radios []web.RadioStatus
	if mon != nil {
		radios = append(radios, mon)
	}
	if err := writeServeRunning(n.Dir(), started); err != nil {
		return err
	}
	defer removeServeRunning(n.Dir())
	srv, err := web.New(n, web.Options{Logger: log, MaxUpload: *maxUpload << 20, MaxArchiveUpload: *o.maxArchive << 20, Quota: *quota << 20,
		Links: links.Stats, Sticks: monitor, Radios: radios,
		Health: web.HealthOptions{Version: currentBuild().String(), Started: started, Status: o.alarm.options()}})
	if err != nil {
		return err
	}
	if err := srv.Open(*listen); err != nil {
		srv.Close()
		return err
	}
	fmt.Fprintf(e.stderr, "ferry: serving %s's web inbox on http://%s/\n", n.Name(), srv.Addr())
	code, err := srv.SetupCode(ctx)
	if err != nil {
		srv.Close()
		return err
	}
	if code != "" {
		fmt.Fprintf(e.stderr, "ferry: setup code: %s\nferry: open http://%s/setup and enter it to create the first admin.\n", code, srv.Addr())
	}
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "ferry: shutting down")
	return srv.Close()
}

// openOrInit opens the node in dir, or initializes one there when dir is
// empty or absent: named name, else after this machine, else "ferry".
func openOrInit(dir, name string, e *env, log *slog.Logger) (*node.Node, error) {
	opts := node.Options{Logger: log}
	n, err := node.Open(dir, opts)
	if !errors.Is(err, node.ErrNotInitialized) {
		return n, err
	}
	if name == "" {
		host, _ := os.Hostname()
		name = hostName(host)
	}
	n, err = node.Init(dir, name, opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "ferry: initialized node %s (%s) in %s\n", n.Name(), n.ID().Short(), dir)
	return n, nil
}

// hostName makes a node name of a host name: "Pi-Garden.local" → "pi-garden".
func hostName(host string) string {
	host, _, _ = strings.Cut(strings.ToLower(host), ".")
	var b strings.Builder
	for _, c := range host {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 32 {
		s = strings.TrimRight(s[:32], "-")
	}
	if !node.ValidName(s) {
		return "ferry"
	}
	return s
}
