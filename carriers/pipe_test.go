package carriers_test

import (
	"testing"

	"ferry/carriers"
	"ferry/carriers/carriertest"
	"ferry/node"
)

func TestConformancePipe(t *testing.T) {
	carriertest.Run(t, carriertest.Harness{Connect: func(t testing.TB, a, b *node.Node) (carriers.Link, carriers.Link) {
		return carriers.Pipe(64 << 10)
	}})
}

// TestConformanceLoRaSizedPipe runs the suite over frames of a LoRa
// radio: the session protocol must work at 251 bytes.
func TestConformanceLoRaSizedPipe(t *testing.T) {
	carriertest.Run(t, carriertest.Harness{Connect: func(t testing.TB, a, b *node.Node) (carriers.Link, carriers.Link) {
		return carriers.Pipe(251)
	}})
}
