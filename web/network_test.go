package web

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/carriers"
	"ferry/lora"
	"ferry/node"
	"ferry/usb"
)

type fakeLinks map[bundle.NodeID]carriers.PeerStats

func (f fakeLinks) Peer(id bundle.NodeID) (carriers.PeerStats, bool) { p, ok := f[id]; return p, ok }

type fakeRadio lora.Status

func (f fakeRadio) Status() lora.Status { return lora.Status(f) }

type fakeSticks usb.Status

func (f fakeSticks) Status() usb.Status { return usb.Status(f) }

// TestNetworkPageShowsLinksAndSticks: the admin's network page shows what
// the live links did with each peer and what the last USB stick did.
func TestNetworkPageShowsLinksAndSticks(t *testing.T) {
	f := newFixture(t, "north")
	river, err := node.Init(filepath.Join(t.TempDir(), "river"), "river", node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer river.Close()
	card, _ := river.Card(nil, nil)
	if _, err := f.n.AddPeer(t.Context(), card, ""); err != nil {
		t.Fatal(err)
	}
	f.account("ada", "admin")
	c := f.member("ada", "192.0.2.1")

	_, body := c.get("/admin/peers")
	if strings.Contains(body, "USB sticks") || !strings.Contains(body, "none") {
		t.Fatalf("without links or sticks the page should say none and show no stick section:\n%s", body)
	}

	f.s.opts.Links = fakeLinks{river.ID(): {Peer: river.ID(), Name: "river", LastContact: time.Now().Add(-time.Minute),
		Medium: "tcp", DataIn: 3 << 20, DataOut: 5 << 10, LastError: "peer <b>stalled</b>"}}
	f.s.opts.Sticks = fakeSticks{Last: &usb.Report{Stick: "/media/STICK", Finished: time.Now(), Applied: 7, Messages: 12,
		Exported: 3, ExportedBytes: 2 << 20, NotFitted: 2, NotFittedBytes: 9 << 20, Bundles: 5, Bytes: 4 << 20,
		Refused: []usb.Issue{{File: "FERRY/bundles/ab/x.bundle", Reason: "bundle: truncated"}}}}
	f.s.opts.Radios = []RadioStatus{fakeRadio{Port: "/dev/ttyUSB0", Modem: "rnode", Region: "eu868-10",
		Params: lora.Params{SF: 9, Bandwidth: 125000}, State: "listening", Peer: "river", RSSI: -97, SNR: 7.25,
		Heard: time.Now(), Airtime: 12500 * time.Millisecond, Budget: 360 * time.Second, Queue: 730, Sessions: 3,
		LastError: "lora: rnode reports error 0x02: transmission failed"}}
	_, body = c.get("/admin/peers")
	for _, want := range []string{"LoRa radios", "rnode on /dev/ttyUSB0", "SF9, 125000 Hz", "RSSI -97 dBm, SNR 7.2 dB",
		"12.5 s of 360 s in the last hour", "730 B waiting", "listening", "last peer: river", "3 sessions", "transmission failed",
		"by tcp", "3.0 MB in", "USB sticks", "/media/STICK", "7 bundles taken in (12 messages",
		"2 did not fit", "Damaged on the stick: FERRY/bundles/ab/x.bundle: bundle: truncated", "peer &lt;b&gt;stalled&lt;/b&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("network page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
}
