package carriers

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// DefaultBeaconPort is the UDP port of LAN discovery beacons.
const DefaultBeaconPort = 7374

// beaconMagic opens every beacon of version 1.
const beaconMagic = "FERRYB\x00\x01"

// beaconSize is the size of a beacon: magic, node ID, TCP port, digest,
// time, signature.
const beaconSize = len(beaconMagic) + 32 + 2 + 16 + 8 + ed25519.SignatureSize

// Beacon is a node's announcement on its LAN: who it is, the TCP port its
// peers reach it on, and the digest of its inventory, so that a peer
// already in sync with it need not connect.
type Beacon struct {
	Node   bundle.NodeID
	Port   uint16
	Digest [16]byte
	At     time.Time
}

// Marshal encodes and signs the beacon:
//
//	"FERRYB" 0x00 0x01 | node ID (32) | port (2, big-endian) |
//	digest (16) | time (8, unix s, big-endian) | ed25519 signature (64)
func (b *Beacon) Marshal(key ed25519.PrivateKey) []byte {
	out := make([]byte, 0, beaconSize)
	out = append(out, beaconMagic...)
	out = append(out, b.Node[:]...)
	out = binary.BigEndian.AppendUint16(out, b.Port)
	out = append(out, b.Digest[:]...)
	out = binary.BigEndian.AppendUint64(out, uint64(b.At.Unix()))
	return append(out, ed25519.Sign(key, out)...)
}

// ErrBeacon means a datagram is not a valid beacon.
var ErrBeacon = errors.New("carriers: not a valid beacon")

// ParseBeacon decodes a beacon and checks its signature. Whether the node
// is trusted is the caller's call.
func ParseBeacon(p []byte) (*Beacon, error) {
	if len(p) != beaconSize || string(p[:len(beaconMagic)]) != beaconMagic {
		return nil, ErrBeacon
	}
	body, sig := p[:beaconSize-ed25519.SignatureSize], p[beaconSize-ed25519.SignatureSize:]
	b := &Beacon{}
	r := body[len(beaconMagic):]
	copy(b.Node[:], r[:32])
	b.Port = binary.BigEndian.Uint16(r[32:34])
	copy(b.Digest[:], r[34:50])
	b.At = time.Unix(int64(binary.BigEndian.Uint64(r[50:58])), 0).UTC()
	if !ed25519.Verify(b.Node.PublicKey(), body, sig) {
		return nil, fmt.Errorf("%w: bad signature", ErrBeacon)
	}
	return b, nil
}

// Discovery finds peers on the LAN with UDP beacons. Every Interval it
// broadcasts a signed [Beacon]; when it hears a trusted peer's beacon and
// the peer's inventory differs from this node's (or messages wait for the
// peer), it calls Found with the peer's address. A node's clock may be
// wrong (a Pi without a network has no time), so beacons are not refused
// for their time; an old beacon replayed only makes a node try to connect,
// and TLS checks who answers.
type Discovery struct {
	// Listen is the UDP address to listen on; empty means ":7374".
	Listen string
	// Targets are where beacons go; empty means the broadcast address
	// 255.255.255.255:7374.
	Targets []string
	// Port is the TCP port announced: where the node's TCPServer listens.
	Port int
	// Interval is the time between beacons; zero means 30 seconds.
	Interval time.Duration
	// Found is called, from the discovery's goroutine, with a trusted
	// peer that is worth a sync and its address.
	Found func(peer bundle.NodeID, addr string)
	// Logger receives the discovery's log; nil discards it.
	Logger *slog.Logger

	n      *node.Node
	conn   *net.UDPConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	digest [16]byte
	at     time.Time
}

// NewDiscovery returns the LAN discovery of node n, announcing port.
func NewDiscovery(n *node.Node, port int) *Discovery {
	return &Discovery{n: n, Port: port}
}

// Open starts listening and beaconing.
func (d *Discovery) Open(ctx context.Context) error {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Interval <= 0 {
		d.Interval = 30 * time.Second
	}
	listen := d.Listen
	if listen == "" {
		listen = ":" + strconv.Itoa(DefaultBeaconPort)
	}
	addr, err := net.ResolveUDPAddr("udp4", listen)
	if err != nil {
		return fmt.Errorf("carriers: discovery: %w", err)
	}
	d.conn, err = net.ListenUDP("udp4", addr)
	if err != nil {
		return fmt.Errorf("carriers: discovery: %w", err)
	}
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.beacon(ctx) }()
	go func() { defer d.wg.Done(); d.listen(ctx) }()
	return nil
}

// LocalAddr returns the address discovery listens on.
func (d *Discovery) LocalAddr() net.Addr { return d.conn.LocalAddr() }

// Close stops discovery.
func (d *Discovery) Close() error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	err := d.conn.Close()
	d.wg.Wait()
	return err
}

// ownDigest returns this node's digest, computed at most once an interval.
func (d *Discovery) ownDigest(ctx context.Context) ([16]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.at) < d.Interval/2 {
		return d.digest, nil
	}
	v, err := d.n.Vector(ctx)
	if err != nil {
		return [16]byte{}, err
	}
	d.digest, d.at = v.Digest(), time.Now()
	return d.digest, nil
}

func (d *Discovery) beacon(ctx context.Context) {
	targets := d.Targets
	if len(targets) == 0 {
		targets = []string{"255.255.255.255:" + strconv.Itoa(DefaultBeaconPort)}
	}
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for {
		digest, err := d.ownDigest(ctx)
		if err == nil {
			b := Beacon{Node: d.n.ID(), Port: uint16(d.Port), Digest: digest, At: time.Now()}
			p := b.Marshal(d.n.Identity().Sign)
			for _, target := range targets {
				addr, err := net.ResolveUDPAddr("udp4", target)
				if err == nil {
					_, err = d.conn.WriteToUDP(p, addr)
				}
				if err != nil && ctx.Err() == nil {
					d.Logger.Debug("sending a beacon", "to", target, "err", err)
				}
			}
		} else if ctx.Err() == nil {
			d.Logger.Warn("computing the inventory digest", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Discovery) listen(ctx context.Context) {
	buf := make([]byte, 2048)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				d.Logger.Warn("reading beacons", "err", err)
			}
			return
		}
		b, err := ParseBeacon(buf[:n])
		if err != nil || b.Node == d.n.ID() || b.Port == 0 {
			continue
		}
		if d.worthSync(ctx, b) && d.Found != nil {
			d.Found(b.Node, net.JoinHostPort(from.IP.String(), strconv.Itoa(int(b.Port))))
		}
	}
}

// worthSync reports whether a beacon comes from a trusted peer whose
// inventory differs from this node's, or while messages wait for a
// contact (for any destination: the peer may carry them on).
func (d *Discovery) worthSync(ctx context.Context, b *Beacon) bool {
	if _, err := d.n.Peer(ctx, b.Node.String()); err != nil {
		return false
	}
	if digest, err := d.ownDigest(ctx); err != nil || digest != b.Digest {
		return true
	}
	// Messages waiting for any destination: the peer may carry them on.
	sts, err := d.n.PeerStatuses(ctx)
	if err != nil {
		return true
	}
	for _, st := range sts {
		if st.Waiting > 0 {
			return true
		}
	}
	return false
}
