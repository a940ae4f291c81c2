//go:build linux

package ble

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-ble/ble"
	"github.com/go-ble/ble/linux"

	"ferry/bundle"
)

// Device is a Bluetooth adapter driven by go-ble, which takes it from
// BlueZ for as long as it is open (docs/ble.md: stop bluetoothd or use a
// second adapter; grant cap_net_admin and cap_net_raw). It serves the
// ferry service to centrals that connect, and connects as a central to
// ferry nodes it finds.
type Device struct {
	dev  *linux.Device
	svc  *Service
	name string
	mu   sync.Mutex // go-ble scans and dials one at a time
}

// Open takes the adapter named like "hci0" and adds the ferry service of
// node id to it.
func Open(adapter string, id bundle.NodeID, opts DeviceOptions) (*Device, error) {
	idx, err := adapterIndex(adapter)
	if err != nil {
		return nil, err
	}
	dev, err := linux.NewDeviceWithName(opts.Name, ble.OptDeviceID(idx))
	if err != nil {
		return nil, fmt.Errorf("ble: open %s (BlueZ must not hold it, and ferry needs cap_net_admin and cap_net_raw: docs/ble.md): %w", adapter, err)
	}
	svc := NewService(id, opts.Service)
	if err := dev.AddService(svc.GATT()); err != nil {
		dev.Stop()
		return nil, fmt.Errorf("ble: add the ferry service: %w", err)
	}
	return &Device{dev: dev, svc: svc, name: opts.Name}, nil
}

// Address returns the adapter's Bluetooth address.
func (d *Device) Address() string { return d.dev.Address().String() }

// Advertise advertises the node's name and the ferry service until ctx
// ends. Centrals that connect are returned by Accept.
func (d *Device) Advertise(ctx context.Context) error {
	err := d.dev.AdvertiseNameAndServices(ctx, d.name, ServiceUUID)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Accept returns the link of the next central that subscribed.
func (d *Device) Accept(ctx context.Context) (*Link, error) { return d.svc.Accept(ctx) }

// Scan looks for ferry nodes until ctx ends and returns those it saw.
func (d *Device) Scan(ctx context.Context) ([]Peer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var mu sync.Mutex
	seen := map[string]Peer{}
	err := d.dev.Scan(ctx, false, func(a ble.Advertisement) {
		if !ble.Contains(a.Services(), ServiceUUID) {
			return
		}
		mu.Lock()
		seen[a.Addr().String()] = Peer{Addr: a.Addr().String(), Name: a.LocalName(), RSSI: a.RSSI()}
		mu.Unlock()
	})
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("ble: scan: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	peers := make([]Peer, 0, len(seen))
	for _, p := range seen {
		peers = append(peers, p)
	}
	return peers, nil
}

// Dial connects as a central to the ferry node at addr.
func (d *Device) Dial(ctx context.Context, addr string, opts CentralOptions) (*Link, Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cl, err := d.dev.Dial(ctx, ble.NewAddr(addr))
	if err != nil {
		return nil, Info{}, fmt.Errorf("ble: connect to %s: %w", addr, err)
	}
	return Connect(ctx, cl, opts)
}

// Close stops the adapter, which BlueZ may take again.
func (d *Device) Close() error {
	d.svc.Close()
	return d.dev.Stop()
}
