package lora

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RF95Modes are rf95modem's AT+MODE presets (RadioHead's
// ModemConfigChoice for the RF95).
var RF95Modes = []Params{
	0: {SF: 7, Bandwidth: 125000, CR: 1},
	1: {SF: 7, Bandwidth: 500000, CR: 1},
	2: {SF: 9, Bandwidth: 31250, CR: 4},
	3: {SF: 12, Bandwidth: 125000, CR: 4},
	4: {SF: 11, Bandwidth: 125000, CR: 1},
}

// RF95 drives a modem running rf95modem firmware, over AT commands:
// "AT+TX=<hex>" sends, "+RX <len>,<hex>,<rssi>,<snr>" lines report frames,
// "AT+MODE=<n>" picks a preset, "AT+FREQ=<MHz>" the frequency and
// "AT+INFO" reports the firmware; each command ends in "+OK" or a line
// starting "+FAIL" or "+ERROR".
type RF95 struct {
	w      io.Writer
	cmu    sync.Mutex // one command at a time
	rx     chan Packet
	lines  chan string
	done   chan struct{}
	dead   chan struct{}
	dErr   error
	closer sync.Once

	mu    sync.Mutex
	stats Stats
}

var _ Modem = (*RF95)(nil)

// NewRF95 starts a driver on rw, a serial port opened at 115200 baud.
func NewRF95(rw io.ReadWriter) *RF95 {
	m := &RF95{w: rw, rx: make(chan Packet, 64), lines: make(chan string, 32),
		done: make(chan struct{}), dead: make(chan struct{})}
	go m.read(bufio.NewReaderSize(rw, 1024))
	return m
}

func (m *RF95) read(br *bufio.Reader) {
	var line []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if retryEOF(err, m.done) {
				continue
			}
			m.dErr = fmt.Errorf("lora: rf95 port: %w", err)
			close(m.dead)
			return
		}
		if c != '\n' {
			if len(line) < 1024 {
				line = append(line, c)
			} else {
				m.skip(1)
			}
			continue
		}
		s := strings.TrimSpace(string(line))
		line = line[:0]
		if s == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(s, "+RX "); ok {
			p, err := parseRX(rest)
			if err != nil {
				m.skip(len(s))
				continue
			}
			m.mu.Lock()
			m.stats.Received++
			m.stats.RSSI, m.stats.SNR = p.RSSI, p.SNR
			m.stats.Heard = time.Now()
			m.mu.Unlock()
			select {
			case m.rx <- p:
			case <-m.done:
				return
			}
			continue
		}
		select {
		case m.lines <- s:
		default:
			m.skip(len(s))
		}
	}
}

func (m *RF95) skip(n int) {
	m.mu.Lock()
	m.stats.Skipped += int64(n)
	m.mu.Unlock()
}

// parseRX parses "<len>,<hex>,<rssi>,<snr>".
func parseRX(s string) (Packet, error) {
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return Packet{}, fmt.Errorf("lora: rf95 +RX with %d fields", len(f))
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return Packet{}, err
	}
	data, err := hex.DecodeString(f[1])
	if err != nil || len(data) != n || n == 0 || n > 255 {
		return Packet{}, fmt.Errorf("lora: rf95 +RX of %d bytes, says %d", len(data), n)
	}
	rssi, err := strconv.Atoi(f[2])
	if err != nil {
		return Packet{}, err
	}
	snr, err := strconv.ParseFloat(f[3], 64)
	if err != nil {
		return Packet{}, err
	}
	return Packet{Data: data, RSSI: rssi, SNR: snr}, nil
}

// Command sends one AT command line and returns the lines before "+OK".
func (m *RF95) Command(ctx context.Context, cmd string) ([]string, error) {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	for { // drop stale lines
		select {
		case <-m.lines:
			continue
		default:
		}
		break
	}
	select {
	case <-m.done:
		return nil, ErrClosed
	default:
	}
	if _, err := io.WriteString(m.w, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("lora: rf95 write: %w", err)
	}
	t := time.NewTimer(commandTimeout)
	defer t.Stop()
	var out []string
	for {
		select {
		case l := <-m.lines:
			switch {
			case l == "+OK":
				return out, nil
			case strings.HasPrefix(l, "+FAIL"), strings.HasPrefix(l, "+ERROR"), l == "ERROR":
				return out, &ModemError{Modem: "rf95", Code: -1, Msg: fmt.Sprintf("%s: %s", cmd[:min(len(cmd), 12)], l)}
			}
			out = append(out, l)
		case <-t.C:
			return out, fmt.Errorf("%w: no answer to %.12q in %v", ErrNoAnswer, cmd, commandTimeout)
		case <-ctx.Done():
			return out, ctx.Err()
		case <-m.done:
			return out, ErrClosed
		case <-m.dead:
			return out, m.dErr
		}
	}
}

// Info returns the lines of AT+INFO; it is also the ping that tells a
// dead modem.
func (m *RF95) Info(ctx context.Context) ([]string, error) {
	return m.Command(ctx, "AT+INFO")
}

// Configure sets the preset mode (an index of RF95Modes) and frequency.
func (m *RF95) Configure(ctx context.Context, mode int, freqHz int64) error {
	if mode < 0 || mode >= len(RF95Modes) {
		return fmt.Errorf("lora: rf95 mode %d outside 0..%d", mode, len(RF95Modes)-1)
	}
	if _, err := m.Command(ctx, "AT+MODE="+strconv.Itoa(mode)); err != nil {
		return err
	}
	if freqHz != 0 {
		if _, err := m.Command(ctx, fmt.Sprintf("AT+FREQ=%.3f", float64(freqHz)/1e6)); err != nil {
			return err
		}
	}
	return nil
}

// Send transmits frame with AT+TX.
func (m *RF95) Send(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameSize, len(frame))
	}
	if _, err := m.Command(ctx, "AT+TX="+hex.EncodeToString(frame)); err != nil {
		return err
	}
	m.mu.Lock()
	m.stats.Sent++
	m.mu.Unlock()
	return nil
}

// Recv returns the next frame received.
func (m *RF95) Recv(ctx context.Context) (Packet, error) {
	select {
	case p := <-m.rx:
		return p, nil
	default:
	}
	select {
	case p := <-m.rx:
		return p, nil
	case <-ctx.Done():
		return Packet{}, ctx.Err()
	case <-m.done:
		return Packet{}, ErrClosed
	case <-m.dead:
		return Packet{}, m.dErr
	}
}

// Stats returns what the driver counted.
func (m *RF95) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close stops the driver; the caller closes the port.
func (m *RF95) Close() error {
	m.closer.Do(func() { close(m.done) })
	return nil
}
