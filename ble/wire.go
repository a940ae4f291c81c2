package ble

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/go-ble/ble"

	"ferry/bundle"
)

// The ferry GATT service and its characteristics. The values are wire
// constants (docs/ble.md), pinned by TestWireConstants.
var (
	// ServiceUUID names the ferry service; centrals scan for it.
	ServiceUUID = ble.MustParse("5f3c0001-8b2e-4c6a-9a57-f3e1d0a2b7c4")
	// RXUUID is written by the central (write, and write without
	// response): chunks from the central to the peripheral.
	RXUUID = ble.MustParse("5f3c0002-8b2e-4c6a-9a57-f3e1d0a2b7c4")
	// TXUUID notifies the central: chunks from the peripheral.
	TXUUID = ble.MustParse("5f3c0003-8b2e-4c6a-9a57-f3e1d0a2b7c4")
	// InfoUUID is read by the central before it subscribes: see [Info].
	InfoUUID = ble.MustParse("5f3c0004-8b2e-4c6a-9a57-f3e1d0a2b7c4")
)

// Version is the version of the chunk layer, the first byte of INFO.
const Version = 0x01

// Chunk header bytes. Every write to RX and every notification of TX is
// one chunk: a header byte and a body of at most ATT MTU − 4 bytes.
const (
	// chunkData marks a data chunk whose frame continues in the next
	// data chunk; the low 6 bits are the chunk's sequence number.
	chunkData = 0x00
	// chunkLast marks the last data chunk of a frame.
	chunkLast = 0x40
	// chunkCredit grants the peer more data chunks: a uvarint count.
	chunkCredit = 0x80
	// chunkClose ends the link: a UTF-8 reason, empty for an orderly end.
	chunkClose = 0x81

	seqMask  = 0x3f
	kindMask = 0xc0
)

// FrameMTU is the largest session frame a BLE link carries
// (carriers.LinkInfo.MTU); each frame is cut into chunks.
const FrameMTU = 4096

// Window limits, in chunks. A central grants at most maxCentralWindow
// chunks in flight: go-ble's GATT client queues at most 16 notifications
// and drops the ones that do not fit. Each side buffers up to its queue
// (defaultQueue) once chunks left go-ble, so that a receiver busy for a
// moment (a disk write) does not stall the sender.
const (
	maxCentralWindow    = 14
	defaultPeriphWindow = 256
	defaultQueue        = 256
	maxWindow           = 1 << 14
	infoLen             = 1 + 32 + 4 + 2
	maxReasonLen        = 200
	headerLen           = 1
	attHeaderLen        = 3
	minChunk            = ble.DefaultMTU - attHeaderLen
	maxChunk            = ble.MaxMTU - attHeaderLen
)

// Info is the value of the INFO characteristic:
//
//	version (1) · node ID (32) · frame MTU (4, big endian) · window (2, big endian)
//
// Window is how many chunks the peripheral accepts in flight.
type Info struct {
	Version  byte
	Node     bundle.NodeID
	FrameMTU int
	Window   int
}

// MarshalBinary encodes i as INFO.
func (i Info) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, infoLen)
	b = append(b, i.Version)
	b = append(b, i.Node[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(i.FrameMTU))
	b = binary.BigEndian.AppendUint16(b, uint16(i.Window))
	return b, nil
}

// ErrVersion means the peer speaks another version of the chunk layer.
var ErrVersion = errors.New("ble: unsupported version")

// ParseInfo decodes the value of INFO.
func ParseInfo(b []byte) (Info, error) {
	if len(b) < infoLen {
		return Info{}, fmt.Errorf("ble: INFO of %d bytes, want %d", len(b), infoLen)
	}
	var i Info
	i.Version = b[0]
	if i.Version != Version {
		return Info{}, fmt.Errorf("%w: INFO version %d", ErrVersion, i.Version)
	}
	copy(i.Node[:], b[1:33])
	i.FrameMTU = int(binary.BigEndian.Uint32(b[33:37]))
	i.Window = int(binary.BigEndian.Uint16(b[37:39]))
	if i.FrameMTU < 200 || i.FrameMTU > 1<<24 || i.Window < 1 {
		return Info{}, fmt.Errorf("ble: INFO with frame MTU %d and window %d", i.FrameMTU, i.Window)
	}
	return i, nil
}

// chunkSize is the largest chunk for an ATT MTU: MTU − 3, the most a
// notification or a write without response carries.
func chunkSize(attMTU int) int {
	return min(max(attMTU, ble.DefaultMTU), ble.MaxMTU) - attHeaderLen
}

// ErrNotFerry means the peer has no ferry service, or not all of it.
var ErrNotFerry = errors.New("ble: the peer offers no ferry service")
