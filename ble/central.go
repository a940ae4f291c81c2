package ble

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/go-ble/ble"

	"ferry/carriers"
)

// CentralOptions tune [Connect]. The zero value is ready to use.
type CentralOptions struct {
	// MTU is the ATT MTU to ask for; zero means the most go-ble takes
	// (515). The link uses the smaller of this and the peripheral's.
	MTU int
	// Window is how many chunks the peripheral may have in flight to
	// this node, at most 14 (the default): go-ble's client drops
	// notifications beyond 16 queued.
	Window int
	// Rate is the link's rough speed in bytes per second, for
	// carriers.LinkInfo; zero means unknown.
	Rate int64
}

// Connect makes a link of a GATT client connected to a ferry node: it
// exchanges the ATT MTU, finds the ferry service, reads INFO, subscribes
// to TX and grants the peripheral its first credit. It returns the link
// and the peripheral's INFO; closing the link disconnects the client.
func Connect(ctx context.Context, cl ble.Client, opts CentralOptions) (*Link, Info, error) {
	if opts.MTU <= 0 || opts.MTU > ble.MaxMTU {
		opts.MTU = ble.MaxMTU
	}
	opts.MTU = max(opts.MTU, ble.DefaultMTU)
	if opts.Window <= 0 || opts.Window > maxCentralWindow {
		opts.Window = maxCentralWindow
	}
	stop := context.AfterFunc(ctx, func() { cl.CancelConnection() })
	defer stop()
	l, info, err := connect(cl, opts)
	if err != nil {
		cl.CancelConnection()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, Info{}, err
	}
	return l, info, nil
}

func connect(cl ble.Client, opts CentralOptions) (*Link, Info, error) {
	peerRx, err := cl.ExchangeMTU(opts.MTU)
	if err != nil {
		return nil, Info{}, fmt.Errorf("ble: exchange MTU: %w", err)
	}
	attMTU := min(peerRx, opts.MTU)
	rx, tx, ic, err := discover(cl)
	if err != nil {
		return nil, Info{}, err
	}
	v, err := cl.ReadLongCharacteristic(ic)
	if err != nil {
		return nil, Info{}, fmt.Errorf("ble: read INFO: %w", err)
	}
	info, err := ParseInfo(v)
	if err != nil {
		return nil, Info{}, err
	}
	l := newLink(linkConfig{
		info:       carriers.LinkInfo{Remote: "ble:" + cl.Addr().String(), Rate: opts.Rate},
		attMTU:     attMTU,
		write:      func(b []byte) error { return cl.WriteCharacteristic(rx, b, true) },
		hangup:     func() { cl.CancelConnection() },
		window:     opts.Window,
		queue:      defaultQueue,
		peerWindow: min(info.Window, maxWindow),
	})
	if err := cl.Subscribe(tx, false, l.deliver); err != nil {
		return nil, Info{}, fmt.Errorf("ble: subscribe to TX: %w", err)
	}
	go func() {
		<-cl.Disconnected()
		l.lost()
	}()
	if err := l.send(chunkCredit, binary.AppendUvarint(nil, uint64(opts.Window))); err != nil {
		return nil, Info{}, err
	}
	return l, info, nil
}

// discover finds the ferry service's characteristics.
func discover(cl ble.Client) (rx, tx, info *ble.Characteristic, err error) {
	ss, err := cl.DiscoverServices([]ble.UUID{ServiceUUID})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ble: discover services: %w", err)
	}
	for _, s := range ss {
		if !s.UUID.Equal(ServiceUUID) {
			continue
		}
		cs, err := cl.DiscoverCharacteristics(nil, s)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("ble: discover characteristics: %w", err)
		}
		for _, c := range cs {
			switch {
			case c.UUID.Equal(RXUUID):
				rx = c
			case c.UUID.Equal(TXUUID):
				tx = c
				if _, err := cl.DiscoverDescriptors(nil, c); err != nil {
					return nil, nil, nil, fmt.Errorf("ble: discover TX descriptors: %w", err)
				}
			case c.UUID.Equal(InfoUUID):
				info = c
			}
		}
	}
	if rx == nil || tx == nil || info == nil {
		return nil, nil, nil, ErrNotFerry
	}
	return rx, tx, info, nil
}
