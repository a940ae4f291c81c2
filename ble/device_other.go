//go:build !linux

package ble

import (
	"context"

	"ferry/bundle"
)

// Device is a Bluetooth adapter; on this system there is none: every
// method returns ErrUnavailable.
type Device struct{}

// Open returns ErrUnavailable: go-ble drives adapters on Linux only.
func Open(adapter string, id bundle.NodeID, opts DeviceOptions) (*Device, error) {
	return nil, ErrUnavailable
}

// Address returns "".
func (d *Device) Address() string { return "" }

// Advertise returns ErrUnavailable.
func (d *Device) Advertise(ctx context.Context) error { return ErrUnavailable }

// Accept returns ErrUnavailable.
func (d *Device) Accept(ctx context.Context) (*Link, error) { return nil, ErrUnavailable }

// Scan returns ErrUnavailable.
func (d *Device) Scan(ctx context.Context) ([]Peer, error) { return nil, ErrUnavailable }

// Dial returns ErrUnavailable.
func (d *Device) Dial(ctx context.Context, addr string, opts CentralOptions) (*Link, Info, error) {
	return nil, Info{}, ErrUnavailable
}

// Close does nothing.
func (d *Device) Close() error { return nil }
