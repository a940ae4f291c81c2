package carriers

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// DefaultPort is the TCP port nodes listen on for peers, apart from the
// web inbox.
const DefaultPort = 7373

// MaxSession bounds a session the server or the scheduler runs: a peer
// that keeps a link alive with pings but moves nothing does not hold it
// for ever.
const MaxSession = 12 * time.Hour

// tcpMTU is the frame size over TCP: big frames, few syscalls.
const tcpMTU = 64 << 10

// handshakeTimeout bounds the TCP connect and the TLS handshake.
const handshakeTimeout = 30 * time.Second

// TCP is the carrier for LAN and Internet links: the session runs inside
// TLS 1.3, and each end's certificate is a self-signed certificate of its
// node key, so that the TLS handshake itself proves which node is at each
// end. Which nodes are trusted is the session's to decide (it tells an
// untrusted peer why it is refused); the handshake checks only that each
// end holds the key its certificate names, and, when dialing a known
// peer, that it is that peer.
type TCP struct {
	n    *node.Node
	cert tls.Certificate
}

var _ Dialer = (*TCP)(nil)

// NewTCP makes the TCP carrier of node n.
func NewTCP(n *node.Node) (*TCP, error) {
	key := n.Identity().Sign
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ferry node " + n.ID().String()},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("carriers: node certificate: %w", err)
	}
	return &TCP{n: n, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}, nil
}

// config returns the TLS configuration of one end; peer, if not zero, is
// the only key the other end may have.
func (t *TCP) config(peer bundle.NodeID) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		ClientAuth:   tls.RequireAnyClientCert,
		// Node keys are not in any CA's pool: verifyNodeCert checks the
		// certificate instead.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return verifyNodeCert(raw, peer) },
		NextProtos:            []string{"ferry/1"},
	}
}

// ErrCertificate means a TLS peer's certificate is not a node's.
var ErrCertificate = errors.New("carriers: not a ferry node certificate")

// verifyNodeCert accepts one self-signed ed25519 certificate, of peer's
// key if peer is not zero. TLS 1.3 has the peer prove it holds the key.
func verifyNodeCert(raw [][]byte, peer bundle.NodeID) error {
	if len(raw) != 1 {
		return fmt.Errorf("%w: %d certificates", ErrCertificate, len(raw))
	}
	id, err := certNode(raw[0])
	if err != nil {
		return err
	}
	if peer != (bundle.NodeID{}) && id != peer {
		return fmt.Errorf("%w: the node there is %s, not %s", ErrUntrusted, id.Short(), peer.Short())
	}
	return nil
}

func certNode(der []byte) (bundle.NodeID, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return bundle.NodeID{}, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return bundle.NodeID{}, fmt.Errorf("%w: not an ed25519 key", ErrCertificate)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return bundle.NodeID{}, fmt.Errorf("%w: not self-signed: %v", ErrCertificate, err)
	}
	return bundle.NodeID(pub), nil
}

// Dial connects to the node at addr ("host:port"; the port defaults to
// DefaultPort) and returns the link once TLS is up.
func (t *TCP) Dial(ctx context.Context, addr string, peer bundle.NodeID) (Link, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, fmt.Sprint(DefaultPort))
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	d := tls.Dialer{Config: t.config(peer)}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("carriers: dial %s: %w", addr, err)
	}
	return tlsLink(conn.(*tls.Conn))
}

// Client runs the client side of TLS over conn and returns the link.
func (t *TCP) Client(ctx context.Context, conn net.Conn, peer bundle.NodeID) (Link, error) {
	return t.handshake(ctx, tls.Client(conn, t.config(peer)))
}

// Server runs the server side of TLS over conn and returns the link.
func (t *TCP) Server(ctx context.Context, conn net.Conn) (Link, error) {
	return t.handshake(ctx, tls.Server(conn, t.config(bundle.NodeID{})))
}

func (t *TCP) handshake(ctx context.Context, c *tls.Conn) (Link, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("carriers: TLS with %s: %w", c.RemoteAddr(), err)
	}
	return tlsLink(c)
}

func tlsLink(c *tls.Conn) (Link, error) {
	st := c.ConnectionState()
	id, err := certNode(st.PeerCertificates[0].Raw)
	if err != nil {
		c.Close()
		return nil, err
	}
	binding, err := st.ExportKeyingMaterial("EXPORTER-ferry-session-1", nil, 32)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("carriers: TLS exporter: %w", err)
	}
	return NewStreamLink(c, LinkInfo{Medium: "tcp", MTU: tcpMTU, Remote: c.RemoteAddr().String(), Peer: id, Binding: binding}), nil
}

// TCPServer listens for peers and runs a session with each that connects.
// Open listens at once, so that a busy port is reported; sessions run in
// the background until Close.
type TCPServer struct {
	// Addr is the address to listen on; empty means ":7373".
	Addr string
	// Session tunes every session; its Stats, if set, records them.
	Session Options
	// MaxSessions bounds the sessions at once; zero means 16. A peer
	// that connects beyond it is closed at once and tries later.
	MaxSessions int
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger

	n      *node.Node
	tcp    *TCP
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	slots  chan struct{}
}

// NewTCPServer returns a server for node n listening on addr.
func NewTCPServer(n *node.Node, addr string) *TCPServer {
	return &TCPServer{n: n, Addr: addr}
}

// Open starts listening and serving.
func (s *TCPServer) Open(ctx context.Context) error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Session.Logger == nil {
		s.Session.Logger = s.Logger
	}
	addr := s.Addr
	if addr == "" {
		addr = fmt.Sprintf(":%d", DefaultPort)
	}
	t, err := NewTCP(s.n)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("carriers: listen for peers: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s.tcp, s.ln, s.cancel = t, ln, cancel
	s.conns = map[net.Conn]bool{}
	slots := s.MaxSessions
	if slots <= 0 {
		slots = 16
	}
	s.slots = make(chan struct{}, slots)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.accept(ctx) }()
	return nil
}

// ListenAddr returns the address the server listens on.
func (s *TCPServer) ListenAddr() net.Addr { return s.ln.Addr() }

func (s *TCPServer) accept(ctx context.Context) {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.Logger.Warn("accepting a peer", "err", err)
			}
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.Logger.Info("too many sessions: closing a connection", "remote", conn.RemoteAddr())
			conn.Close()
			continue
		}
		s.mu.Lock()
		s.conns[conn] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.serve(ctx, conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

func (s *TCPServer) serve(ctx context.Context, conn net.Conn) {
	l, err := s.tcp.Server(ctx, conn)
	if err != nil {
		s.Logger.Info("peer connection refused", "remote", conn.RemoteAddr(), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, MaxSession)
	defer cancel()
	rep, err := Sync(ctx, s.n, l, s.Session)
	if err != nil {
		s.Logger.Info("session with a peer ended", "remote", conn.RemoteAddr(), "peer", rep.PeerName, "err", err)
		return
	}
	s.Logger.Info("synced with a peer", "peer", rep.PeerName, "remote", rep.Remote, "received", rep.Received.Bundles, "sent", rep.Sent.Bundles)
}

// Close stops listening, ends the sessions under way (what they received
// in part resumes at the next contact) and waits for them, at most a few
// seconds.
func (s *TCPServer) Close() error {
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
