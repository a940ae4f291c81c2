package ble

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-ble/ble"

	"ferry/bundle"
	"ferry/carriers"
)

// Service is the peripheral side of the ferry GATT service: add
// [Service.GATT] to a go-ble server (a [Device], or an ATT server over
// any ble.Conn), and [Service.Accept] returns a [*Link] for each central
// that subscribes to TX.
type Service struct {
	node   bundle.NodeID
	window int
	rate   int64

	mu    sync.Mutex
	conns map[ble.Conn]*periphConn
	acc   chan *Link
	done  chan struct{}
	once  sync.Once
}

// ServiceOptions tune a [Service]. The zero value is ready to use.
type ServiceOptions struct {
	// Window is how many chunks a central may have in flight to this
	// node; zero means 256.
	Window int
	// Rate is the link's rough speed in bytes per second, for
	// carriers.LinkInfo; zero means unknown.
	Rate int64
}

// NewService returns the ferry service of node id.
func NewService(id bundle.NodeID, opts ServiceOptions) *Service {
	if opts.Window <= 0 {
		opts.Window = defaultPeriphWindow
	}
	return &Service{
		node: id, window: min(opts.Window, maxWindow), rate: opts.Rate,
		conns: map[ble.Conn]*periphConn{},
		acc:   make(chan *Link, 4), done: make(chan struct{}),
	}
}

// GATT returns the go-ble service: RX (write, write without response),
// TX (notify) and INFO (read).
func (s *Service) GATT() *ble.Service {
	svc := ble.NewService(ServiceUUID)
	rx := svc.NewCharacteristic(RXUUID)
	rx.HandleWrite(ble.WriteHandlerFunc(s.serveWrite))
	tx := svc.NewCharacteristic(TXUUID)
	tx.HandleNotify(ble.NotifyHandlerFunc(s.serveNotify))
	info := svc.NewCharacteristic(InfoUUID)
	info.HandleRead(ble.ReadHandlerFunc(s.serveInfo))
	return svc
}

// Info returns the value of INFO.
func (s *Service) Info() Info {
	return Info{Version: Version, Node: s.node, FrameMTU: FrameMTU, Window: s.window}
}

func (s *Service) serveInfo(req ble.Request, rsp ble.ResponseWriter) {
	v, _ := s.Info().MarshalBinary()
	// go-ble's response writer refuses more than fits: send what fits,
	// and the central reads the rest with Read Blob.
	if off := req.Offset(); off < len(v) {
		v = v[off:]
		rsp.Write(v[:min(len(v), rsp.Cap()-rsp.Len())])
	}
}

// ErrClosed means the service was closed.
var ErrClosed = errors.New("ble: service closed")

// Accept returns the link of the next central that subscribed to TX.
func (s *Service) Accept(ctx context.Context) (*Link, error) {
	select {
	case l := <-s.acc:
		return l, nil
	case <-s.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops accepting links; links already accepted stay open.
func (s *Service) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// periphConn is one central's connection.
type periphConn struct {
	link       *Link
	notifier   chan ble.Notifier // the TX notifier, once subscribed
	subscribed bool
}

// linkFor returns the link of conn, making it on the first write or
// subscription: a central's first write may be handled before go-ble
// starts the notify handler.
func (s *Service) linkFor(conn ble.Conn, n ble.Notifier) *Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc := s.conns[conn]
	if pc == nil {
		pc = &periphConn{notifier: make(chan ble.Notifier, 1)}
		var nt ble.Notifier
		write := func(b []byte) error {
			if nt == nil {
				t := time.NewTimer(closeGrace)
				defer t.Stop()
				select {
				case nt = <-pc.notifier:
				case <-t.C:
				}
				if nt == nil {
					return errors.New("ble: the central did not subscribe to TX")
				}
			}
			_, err := nt.Write(b)
			return err
		}
		pc.link = newLink(linkConfig{
			info:   carriers.LinkInfo{Remote: "ble:" + conn.RemoteAddr().String(), Rate: s.rate},
			attMTU: min(conn.TxMTU(), conn.RxMTU()),
			write:  write,
			hangup: func() { conn.Close() },
			window: s.window,
		})
		s.conns[conn] = pc
		go s.watch(conn, pc.link)
	}
	if n != nil && !pc.subscribed {
		pc.subscribed = true
		pc.notifier <- n
		select {
		case <-s.done:
			pc.link.Close()
		case s.acc <- pc.link:
		default:
			pc.link.drop("this node takes no more links now")
		}
	}
	return pc.link
}

// watch ends l when its connection goes down.
func (s *Service) watch(conn ble.Conn, l *Link) {
	<-conn.Disconnected()
	l.lost()
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

func (s *Service) serveWrite(req ble.Request, rsp ble.ResponseWriter) {
	s.linkFor(req.Conn(), nil).deliver(req.Data())
}

func (s *Service) serveNotify(req ble.Request, n ble.Notifier) {
	l := s.linkFor(req.Conn(), n)
	select {
	case <-n.Context().Done():
		l.lost()
	case <-l.ended:
	}
}
