package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"ferry/carriers"
	"ferry/lora"
	"ferry/lora/emulator"
	"ferry/node"
	"ferry/usb"
	"ferry/web"
)

// The demo's communities and how they are linked: north and river share a
// LAN, a stick walks between river and hill, hill and north have a LoRa
// pair.
var demoNames = []string{"north", "river", "hill"}

// demoPlaces are where the communities say they are (made up, a few tens
// of kilometres apart), and the carriers they announce, so that the map
// page draws them.
var demoPlaces = map[string]struct {
	loc      node.Location
	carriers []string
}{
	"north": {node.Location{Lat: 46.9, Lon: 7.4}, []string{"tcp", "lora"}},
	"river": {node.Location{Lat: 46.5, Lon: 7.0}, []string{"tcp", "usb"}},
	"hill":  {node.Location{Lat: 46.4, Lon: 7.8}, []string{"usb", "lora"}},
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs := flags("demo", e)
	dir := fs.String("dir", "", "folder for the three communities' data (default: a temporary folder, removed at the end)")
	port := fs.Int("port", 8080, "the first web inbox port: north on it, river and hill on the next two (0: any free ports)")
	lanEvery := fs.Duration("lan-every", 10*time.Second, "time between LAN syncs of north and river")
	stickEvery := fs.Duration("stick-every", 20*time.Second, "time between the stick's stops (river, hill, river, ...)")
	loraEvery := fs.Duration("lora-every", 30*time.Second, "time between LoRa sessions of hill and north")
	announceEvery := fs.Duration("announce-every", time.Minute, "time between each community's announcements, which draw the map (0: never)")
	verbose := fs.Bool("v", false, "log what the nodes and carriers do")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "ferry-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	logOut := io.Discard
	if *verbose {
		logOut = e.stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))
	d := &demo{e: e, log: log, dir: *dir, stats: map[string]*carriers.Stats{}}
	defer d.close()
	if err := d.start(ctx, *port); err != nil {
		return err
	}
	for _, name := range demoNames {
		f := &announceFlags{every: *announceEvery, ttl: node.DefaultAnnounceTTL}
		defer startAnnouncer(ctx, d.nodes[name], f, demoPlaces[name].carriers, log)()
	}
	d.printGuide(ctx, *lanEvery, *stickEvery, *loraEvery)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){
		func(ctx context.Context) { d.every(ctx, *lanEvery, d.lan) },
		func(ctx context.Context) { d.every(ctx, *stickEvery, d.walk) },
		func(ctx context.Context) { d.every(ctx, *loraEvery, d.radio) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	<-ctx.Done()
	wg.Wait()
	fmt.Fprintln(e.stderr, "ferry: demo stopped")
	return nil
}

type demo struct {
	e      *env
	log    *slog.Logger
	dir    string
	nodes  map[string]*node.Node
	webs   map[string]*web.Server
	stats  map[string]*carriers.Stats
	server *carriers.TCPServer // river's peer listener, on loopback
	tcp    *carriers.TCP       // north's dialer
	stick  string
	stop   int // the stick's next stop: 0 river, 1 hill
}

// start makes (or opens) the three nodes, makes them trust one another,
// and opens their web inboxes and river's peer listener, all on loopback.
func (d *demo) start(ctx context.Context, port int) error {
	d.nodes, d.webs = map[string]*node.Node{}, map[string]*web.Server{}
	var cards []string
	for _, name := range demoNames {
		n, err := openOrInit(filepath.Join(d.dir, name), name, &env{stderr: io.Discard}, d.log)
		if err != nil {
			return err
		}
		d.nodes[name] = n
		if loc, err := n.Location(ctx); err != nil {
			return err
		} else if loc == nil {
			place := demoPlaces[name].loc
			if err := n.SetLocation(ctx, &place); err != nil {
				return err
			}
		}
		card, err := n.Card(nil, nil)
		if err != nil {
			return err
		}
		cards = append(cards, card)
	}
	for i, name := range demoNames {
		for j, card := range cards {
			if i == j {
				continue
			}
			if _, err := d.nodes[name].AddPeer(ctx, card, ""); err != nil {
				return err
			}
		}
	}
	for i, name := range demoNames {
		d.stats[name] = &carriers.Stats{}
		srv, err := web.New(d.nodes[name], web.Options{Logger: d.log, Links: d.stats[name]})
		if err != nil {
			return err
		}
		addr := "127.0.0.1:0"
		if port != 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", port+i)
		}
		if err := srv.Open(addr); err != nil {
			srv.Close()
			return err
		}
		d.webs[name] = srv
	}
	d.server = carriers.NewTCPServer(d.nodes["river"], "127.0.0.1:0")
	d.server.Session = carriers.Options{Logger: d.log, Stats: d.stats["river"]}
	if err := d.server.Open(ctx); err != nil {
		return err
	}
	var err error
	if d.tcp, err = carriers.NewTCP(d.nodes["north"]); err != nil {
		return err
	}
	d.stick = filepath.Join(d.dir, "stick")
	return os.MkdirAll(d.stick, 0o755)
}

func (d *demo) printGuide(ctx context.Context, lan, stick, radio time.Duration) {
	w := d.e.stdout
	fmt.Fprintln(w, "ferry demo: three communities on this machine, linked by three carriers")
	fmt.Fprintln(w, "  north ──LAN── river ──USB stick── hill ──LoRa── north")
	fmt.Fprintf(w, "  (LAN sync every %s, the stick changes hands every %s, a LoRa session every %s)\n", lan, stick, radio)
	fmt.Fprintln(w)
	for _, name := range demoNames {
		addr := d.webs[name].Addr()
		code, err := d.webs[name].SetupCode(ctx)
		if err != nil || code == "" {
			code = "(already set up)"
		}
		fmt.Fprintf(w, "  %-6s http://%s/   setup code %s\n", name, addr, code)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Try this:")
	fmt.Fprintln(w, "  1. Open each address, go to /setup, enter its code and make an admin (ana at north, ben at river, cat at hill).")
	fmt.Fprintln(w, "  2. At north, open Messages and write to ben@river: the LAN carries it within seconds.")
	fmt.Fprintln(w, "  3. At north, write to cat@hill: it goes by LoRa, or by LAN to river and then on the stick.")
	fmt.Fprintln(w, "  4. Watch the message turn carried, then delivered when the receipt comes back.")
	fmt.Fprintln(w, "  5. /admin/peers shows each link and what waits for whom; /map draws the network.")
	fmt.Fprintln(w, "The lines below say what each carrier moved.")
	fmt.Fprintf(w, "Data in %s. Press Ctrl-C to stop.\n", d.dir)
}

// every runs fn every period until ctx is done.
func (d *demo) every(ctx context.Context, period time.Duration, fn func(context.Context) error) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(d.e.stderr, "ferry: demo: %v\n", err)
		}
	}
}

// lan syncs north with river over TCP and TLS on loopback.
func (d *demo) lan(ctx context.Context) error {
	l, err := d.tcp.Dial(ctx, d.server.ListenAddr().String(), d.nodes["river"].ID())
	if err != nil {
		return fmt.Errorf("LAN: %w", err)
	}
	rep, err := carriers.Sync(ctx, d.nodes["north"], l, carriers.Options{Logger: d.log, Stats: d.stats["north"], Peer: d.nodes["river"].ID()})
	if err != nil {
		return fmt.Errorf("LAN: %w", err)
	}
	d.report("LAN north⇄river", rep.Sent.Bundles, rep.Received.Bundles)
	return nil
}

// walk plugs the stick into its next stop.
func (d *demo) walk(ctx context.Context) error {
	name := []string{"river", "hill"}[d.stop]
	d.stop = 1 - d.stop
	rep, err := usb.Sync(ctx, d.nodes[name], d.stick, usb.Options{Logger: d.log, Capacity: 64 << 20, Reserve: 1})
	if err != nil {
		return fmt.Errorf("stick at %s: %w", name, err)
	}
	d.report("stick at "+name, rep.Exported, rep.Applied+rep.Stored)
	return nil
}

// radio runs one LoRa session between hill and north on an emulated pair
// of modems (SF7, 500 kHz, the EU868 10 % sub-band's duty cycle).
func (d *demo) radio(ctx context.Context) error {
	p := lora.Params{SF: 7, Bandwidth: 500000, CR: 1, Frequency: 869_525_000}
	air := emulator.New(emulator.Config{Seed: uint64(time.Now().UnixNano())})
	ma, _ := air.Modem("hill", p)
	mb, _ := air.Modem("north", p)
	defer ma.Close()
	defer mb.Close()
	la := lora.NewLink(lora.LinkConfig{Modem: ma, Params: p, Budget: lora.NewBudget(lora.EU868Sub10), Initiator: true, Remote: "north"})
	lb := lora.NewLink(lora.LinkConfig{Modem: mb, Params: p, Budget: lora.NewBudget(lora.EU868Sub10), Remote: "hill"})
	// Ctrl-C stops the radio at once: a graceful close waits for turns
	// and FINs over the emulated air, which took up to minutes.
	defer context.AfterFunc(ctx, func() { la.Abort(); lb.Abort() })()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var ra, rb *carriers.Report
	var ea, eb error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ra, ea = carriers.Sync(ctx, d.nodes["hill"], la, carriers.Options{Logger: d.log, Stats: d.stats["hill"], Idle: time.Minute})
	}()
	go func() {
		defer wg.Done()
		rb, eb = carriers.Sync(ctx, d.nodes["north"], lb, carriers.Options{Logger: d.log, Stats: d.stats["north"], Idle: time.Minute})
	}()
	wg.Wait()
	if err := errors.Join(ea, eb); err != nil {
		return fmt.Errorf("LoRa: %w", err)
	}
	d.report("LoRa hill⇄north", ra.Sent.Bundles, rb.Sent.Bundles)
	return nil
}

func (d *demo) report(what string, out, in int) {
	if out+in > 0 {
		fmt.Fprintf(d.e.stdout, "%s  %-18s %d bundles one way, %d the other\n", time.Now().Format("15:04:05"), what, out, in)
	}
}

func (d *demo) close() {
	for _, s := range d.webs {
		s.Close()
	}
	if d.server != nil {
		d.server.Close()
	}
	for _, n := range d.nodes {
		n.Close()
	}
}
