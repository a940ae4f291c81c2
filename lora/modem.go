package lora

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// A Packet is one frame a modem received.
type Packet struct {
	Data []byte
	RSSI int     // dBm
	SNR  float64 // dB
}

// A Modem sends and receives LoRa frames of at most MaxFrame bytes.
//
// Send hands one frame to the modem; it returns once the modem accepted
// it, not once it is on air. Recv returns the next frame received, or an
// error: one wrapping [ErrModem] if the modem reported a failure, one
// wrapping [ErrClosed] after Close, or ctx's error. Send and Recv may run
// at the same time.
type Modem interface {
	Send(ctx context.Context, frame []byte) error
	Recv(ctx context.Context) (Packet, error)
	Close() error
}

// Errors of the modem drivers.
var (
	// ErrModem means the modem reported a failure; a *ModemError says which.
	ErrModem = errors.New("lora: modem error")
	// ErrNoAnswer means the modem did not answer a command in time.
	ErrNoAnswer = errors.New("lora: modem does not answer")
	// ErrClosed means the driver was closed.
	ErrClosed = errors.New("lora: modem closed")
	// ErrFrameSize means a frame was empty or over MaxFrame bytes.
	ErrFrameSize = errors.New("lora: frame size outside 1..251 bytes")
	// ErrSetting means the modem echoed another value than the one set.
	ErrSetting = errors.New("lora: modem refused a setting")
)

// ModemError is a failure the modem reported.
type ModemError struct {
	Modem string // "rnode" or "rf95"
	Code  int    // the modem's error code, or -1
	Msg   string
}

func (e *ModemError) Error() string {
	if e.Code >= 0 {
		return fmt.Sprintf("lora: %s reports error 0x%02x: %s", e.Modem, e.Code, e.Msg)
	}
	return fmt.Sprintf("lora: %s reports an error: %s", e.Modem, e.Msg)
}

// Unwrap returns ErrModem.
func (e *ModemError) Unwrap() error { return ErrModem }

// Stats counts what a driver saw.
type Stats struct {
	Sent, Received int64 // frames
	Skipped        int64 // bytes or lines from the port that made no sense
	RSSI           int   // of the last frame received, dBm
	SNR            float64
	Heard          time.Time // when the last frame arrived
}

// commandTimeout is how long a driver waits for a command's answer.
const commandTimeout = 2 * time.Second

// retryEOF reports whether a driver's read loop should read again after
// err: tarm/serial reports a read timeout as (0, io.EOF), so a bare EOF
// does not mean the port is gone (a ping tells a dead modem). It pauses
// 20 ms first, and says no once done is closed.
func retryEOF(err error, done <-chan struct{}) bool {
	if !errors.Is(err, io.EOF) {
		return false
	}
	select {
	case <-done:
		return false
	case <-time.After(20 * time.Millisecond):
		return true
	}
}
