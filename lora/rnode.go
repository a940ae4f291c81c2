package lora

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// RNode KISS commands and values, as RNode_Firmware (markqvist) defines
// them. Wire values are literals, pinned by TestRNodeGolden.
const (
	rnData       = 0x00
	rnFrequency  = 0x01 // uint32 Hz, big-endian
	rnBandwidth  = 0x02 // uint32 Hz, big-endian
	rnTXPower    = 0x03 // dBm, one byte
	rnSF         = 0x04 // 6..12
	rnCR         = 0x05 // 5..8, for 4/5..4/8
	rnRadioState = 0x06 // 0 off, 1 on, 0xFF ask
	rnDetect     = 0x08 // host sends 0x73, modem answers 0x46
	rnSTALock    = 0x0B // short-term airtime lock, percent × 100, uint16 big-endian
	rnLTALock    = 0x0C // long-term airtime lock, same
	rnReady      = 0x0F
	rnStatRSSI   = 0x23 // RSSI + 157
	rnStatSNR    = 0x24 // int8, quarter dB
	rnError      = 0x90

	rnDetectReq  = 0x73
	rnDetectResp = 0x46
	rnRSSIOffset = 157
)

var rnodeErrors = map[byte]string{
	0x01: "radio initialisation failed",
	0x02: "transmission failed",
	0x03: "EEPROM locked",
	0x04: "queue full",
	0x05: "memory low",
	0x06: "modem timeout",
}

// RNode drives a modem running RNode firmware, over KISS framing.
type RNode struct {
	w      io.Writer
	wmu    sync.Mutex
	k      *KISSReader
	rx     chan Packet
	resp   chan kissFrame
	errs   chan error
	done   chan struct{}
	closer sync.Once
	dead   chan struct{} // closed when the port failed; deadErr says how
	dErr   error

	mu    sync.Mutex
	stats Stats
	rssi  int
	snr   float64
}

var _ Modem = (*RNode)(nil)

type kissFrame struct {
	cmd  byte
	data []byte
}

// NewRNode starts a driver on rw, a serial port opened at 115200 baud.
// It reads rw in a goroutine until Close. Call Configure before Send.
func NewRNode(rw io.ReadWriter) *RNode {
	r := &RNode{
		w: rw, k: NewKISSReader(rw),
		rx: make(chan Packet, 64), resp: make(chan kissFrame, 16), errs: make(chan error, 4),
		done: make(chan struct{}), dead: make(chan struct{}),
	}
	go r.read()
	return r
}

func (r *RNode) read() {
	for {
		cmd, data, err := r.k.ReadFrame()
		if err != nil {
			if retryEOF(err, r.done) {
				continue
			}
			r.mu.Lock()
			r.stats.Skipped = int64(r.k.Skipped)
			r.mu.Unlock()
			r.dErr = fmt.Errorf("lora: rnode port: %w", err)
			close(r.dead)
			return
		}
		r.mu.Lock()
		r.stats.Skipped = int64(r.k.Skipped)
		switch cmd {
		case rnData:
			r.stats.Received++
			p := Packet{Data: append([]byte(nil), data...), RSSI: r.rssi, SNR: r.snr}
			r.stats.RSSI, r.stats.SNR = r.rssi, r.snr
			r.stats.Heard = time.Now()
			r.mu.Unlock()
			select {
			case r.rx <- p:
			case <-r.done:
				return
			}
			continue
		case rnStatRSSI:
			if len(data) == 1 {
				r.rssi = int(data[0]) - rnRSSIOffset
			}
		case rnStatSNR:
			if len(data) == 1 {
				r.snr = float64(int8(data[0])) / 4
			}
		case rnError:
			code := -1
			if len(data) > 0 {
				code = int(data[0])
			}
			e := &ModemError{Modem: "rnode", Code: code, Msg: rnodeErrors[byte(code)]}
			if e.Msg == "" {
				e.Msg = "unknown"
			}
			select {
			case r.errs <- e:
			default:
			}
		default:
			f := kissFrame{cmd, append([]byte(nil), data...)}
			select {
			case r.resp <- f:
			default: // nobody asked: drop
			}
		}
		r.mu.Unlock()
	}
}

func (r *RNode) write(cmd byte, data []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	select {
	case <-r.done:
		return ErrClosed
	default:
	}
	_, err := r.w.Write(AppendKISS(nil, cmd, data))
	if err != nil {
		return fmt.Errorf("lora: rnode write: %w", err)
	}
	return nil
}

// command sends cmd and waits for the modem's frame of the same command.
func (r *RNode) command(ctx context.Context, cmd byte, data []byte) ([]byte, error) {
	for { // drop stale answers
		select {
		case <-r.resp:
			continue
		default:
		}
		break
	}
	if err := r.write(cmd, data); err != nil {
		return nil, err
	}
	t := time.NewTimer(commandTimeout)
	defer t.Stop()
	for {
		select {
		case f := <-r.resp:
			if f.cmd == cmd {
				return f.data, nil
			}
		case err := <-r.errs:
			return nil, err
		case <-t.C:
			return nil, fmt.Errorf("%w: no answer to command 0x%02x in %v", ErrNoAnswer, cmd, commandTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.done:
			return nil, ErrClosed
		case <-r.dead:
			return nil, r.dErr
		}
	}
}

// set sends a setting and checks the modem echoes the same value.
func (r *RNode) set(ctx context.Context, name string, cmd byte, data []byte) error {
	got, err := r.command(ctx, cmd, data)
	if err != nil {
		return fmt.Errorf("lora: rnode setting %s: %w", name, err)
	}
	if string(got) != string(data) {
		return fmt.Errorf("%w: %s set to % x, modem has % x", ErrSetting, name, data, got)
	}
	return nil
}

// Detect asks whether an RNode is on the port; it is also the ping
// that tells a dead modem (the port's EOF does not).
func (r *RNode) Detect(ctx context.Context) error {
	got, err := r.command(ctx, rnDetect, []byte{rnDetectReq})
	if err != nil {
		return fmt.Errorf("lora: rnode detect: %w", err)
	}
	if len(got) != 1 || got[0] != rnDetectResp {
		return fmt.Errorf("%w: detect answered % x, not 46", ErrNoAnswer, got)
	}
	return nil
}

// Configure detects the modem, sets the radio to p and the airtime locks
// to the region's duty cycle, checking each echo, and turns the radio on.
func (r *RNode) Configure(ctx context.Context, p Params, reg Region) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := r.Detect(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		cmd  byte
		data []byte
	}{
		{"frequency", rnFrequency, binary.BigEndian.AppendUint32(nil, uint32(p.Frequency))},
		{"bandwidth", rnBandwidth, binary.BigEndian.AppendUint32(nil, uint32(p.Bandwidth))},
		{"tx power", rnTXPower, []byte{byte(p.TXPower)}},
		{"spreading factor", rnSF, []byte{byte(p.SF)}},
		{"coding rate", rnCR, []byte{byte(p.CR + 4)}},
	}
	if reg.DutyCycle > 0 {
		lock := binary.BigEndian.AppendUint16(nil, uint16(math.Round(reg.DutyCycle*100*100)))
		steps = append(steps,
			struct {
				name string
				cmd  byte
				data []byte
			}{"short-term airtime lock", rnSTALock, lock},
			struct {
				name string
				cmd  byte
				data []byte
			}{"long-term airtime lock", rnLTALock, lock})
	}
	for _, s := range steps {
		if err := r.set(ctx, s.name, s.cmd, s.data); err != nil {
			return err
		}
	}
	return r.set(ctx, "radio state", rnRadioState, []byte{0x01})
}

// Send hands frame to the modem.
func (r *RNode) Send(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameSize, len(frame))
	}
	select {
	case err := <-r.errs:
		return err
	case <-r.dead:
		return r.dErr
	default:
	}
	if err := r.write(rnData, frame); err != nil {
		return err
	}
	r.mu.Lock()
	r.stats.Sent++
	r.mu.Unlock()
	return nil
}

// Recv returns the next frame received.
func (r *RNode) Recv(ctx context.Context) (Packet, error) {
	select {
	case p := <-r.rx:
		return p, nil
	default:
	}
	select {
	case p := <-r.rx:
		return p, nil
	case err := <-r.errs:
		return Packet{}, err
	case <-ctx.Done():
		return Packet{}, ctx.Err()
	case <-r.done:
		return Packet{}, ErrClosed
	case <-r.dead:
		return Packet{}, r.dErr
	}
}

// Stats returns what the driver counted.
func (r *RNode) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close stops the driver. It does not close the port, which the caller
// opened; a read blocked on the port returns when the port closes.
func (r *RNode) Close() error {
	r.closer.Do(func() { close(r.done) })
	return nil
}
