package ble

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnavailable means this build has no BLE: go-ble drives HCI adapters
// on Linux only.
var ErrUnavailable = errors.New("ble: not available on this system (Linux only)")

// DeviceOptions tune [Open].
type DeviceOptions struct {
	// Name is advertised as the local name: the node's name.
	Name string
	// Service tunes the ferry service.
	Service ServiceOptions
}

// Peer is a ferry node found by a scan.
type Peer struct {
	Addr string // the Bluetooth address
	Name string // the advertised local name
	RSSI int
}

// adapterIndex parses "hci0" (or "0") into 0.
func adapterIndex(name string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "hci"))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("ble: adapter %q: want hciN", name)
	}
	return n, nil
}
