package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeBLEWithoutAdapterFailsClearly: asked for a Bluetooth adapter it
// cannot have, serve stops at once and says why, instead of running
// without the carrier the admin asked for.
func TestServeBLEWithoutAdapterFailsClearly(t *testing.T) {
	if _, err := os.Stat("/sys/class/bluetooth/hci0"); err == nil {
		t.Skip("this machine has a Bluetooth adapter; the blehw tests cover it (docs/ble.md)")
	}
	data := filepath.Join(t.TempDir(), "north")
	r := ferry(t, "serve", "--data", data, "--name", "north", "--listen", "127.0.0.1:0",
		"--sync-listen", "off", "--usb-watch", "off", "--ble", "hci0")
	if r.code != 1 || !strings.Contains(r.stderr, "bluetooth adapter hci0") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
