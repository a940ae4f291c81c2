package emulator

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"ferry/lora"
)

// Protocol names the serial protocol a Port speaks.
type Protocol string

// The protocols.
const (
	RNode Protocol = "rnode"
	RF95  Protocol = "rf95"
)

// A Port is an emulated modem behind a pseudo-terminal: the emulator
// holds the master side, a driver opens Path (the slave tty).
type Port struct {
	Radio *Radio
	Path  string
	proto Protocol

	master, slave *os.File
	wmu           sync.Mutex

	mu      sync.Mutex
	mute    bool
	txError bool
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// OpenPTY opens a pseudo-terminal with an emulated modem of protocol
// proto on a new radio with settings p (switched off for RNode until the
// host turns it on, as the firmware does).
func (a *Air) OpenPTY(name string, proto Protocol, p lora.Params) (*Port, error) {
	pm, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("emulator: open pty: %w", err)
	}
	// creack/pty hands a blocking master, whose Read Close cannot
	// interrupt: reopen it non-blocking so that the runtime poller serves it.
	fd, err := unix.Dup(int(pm.Fd()))
	pm.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("emulator: pty master: %w", err)
	}
	m := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(s); err != nil {
		m.Close()
		s.Close()
		return nil, err
	}
	r := a.NewRadio(name, p)
	if proto == RNode {
		r.SetOn(false)
	}
	pt := &Port{Radio: r, Path: s.Name(), proto: proto, master: m, slave: s, done: make(chan struct{})}
	pt.wg.Add(2)
	go pt.readHost()
	go pt.forward()
	return pt, nil
}

// makeRaw turns off echo and line editing on the slave, so that bytes
// pass unchanged before the driver opens it (tarm/serial sets raw mode too).
func makeRaw(f *os.File) error {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return fmt.Errorf("emulator: termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	return unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
}

// Mute makes the modem stop answering (and stop transmitting) or resume.
func (p *Port) Mute(on bool) { p.mu.Lock(); p.mute = on; p.mu.Unlock() }

// FailTX makes the modem answer every frame with a transmission error.
func (p *Port) FailTX(on bool) { p.mu.Lock(); p.txError = on; p.mu.Unlock() }

// Inject writes raw bytes to the host, as line noise or a broken modem would.
func (p *Port) Inject(b []byte) error { return p.write(b) }

func (p *Port) muted() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.mute }

func (p *Port) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.master.Write(b)
	return err
}

// Close stops the emulated modem and closes both sides of the pty.
func (p *Port) Close() error {
	p.once.Do(func() { close(p.done) })
	p.Radio.Stop()
	p.slave.Close()
	err := p.master.Close()
	p.wg.Wait()
	return err
}

// forward sends what the radio hears to the host.
func (p *Port) forward() {
	defer p.wg.Done()
	for {
		select {
		case pk := <-p.Radio.Received():
			if p.muted() {
				continue
			}
			var out []byte
			switch p.proto {
			case RNode:
				out = lora.AppendKISS(out, 0x23, []byte{byte(pk.RSSI + 157)})
				out = lora.AppendKISS(out, 0x24, []byte{byte(int8(math.Round(pk.SNR * 4)))})
				out = lora.AppendKISS(out, 0x00, pk.Data)
			case RF95:
				out = fmt.Appendf(out, "+RX %d,%s,%d,%.2f\r\n", len(pk.Data), hex.EncodeToString(pk.Data), pk.RSSI, pk.SNR)
			}
			if p.write(out) != nil {
				return
			}
		case <-p.done:
			return
		}
	}
}

func (p *Port) readHost() {
	defer p.wg.Done()
	switch p.proto {
	case RNode:
		p.serveRNode()
	case RF95:
		p.serveRF95()
	}
}

func (p *Port) serveRNode() {
	k := lora.NewKISSReader(p.master)
	var st, lt float64
	for {
		cmd, data, err := k.ReadFrame()
		if err != nil {
			return // master closed
		}
		if p.muted() {
			continue
		}
		prm := p.Radio.Params()
		reply := func(d []byte) { p.write(lora.AppendKISS(nil, cmd, d)) }
		switch cmd {
		case 0x00:
			p.mu.Lock()
			fail := p.txError
			p.mu.Unlock()
			if fail || !p.Radio.Transmit(data) {
				code := byte(0x04)
				if fail {
					code = 0x02
				}
				p.write(lora.AppendKISS(nil, 0x90, []byte{code}))
			}
		case 0x08:
			if len(data) == 1 && data[0] == 0x73 {
				reply([]byte{0x46})
			}
		case 0x01:
			if len(data) == 4 {
				prm.Frequency = int64(binary.BigEndian.Uint32(data))
				p.Radio.SetParams(prm)
			}
			reply(binary.BigEndian.AppendUint32(nil, uint32(prm.Frequency)))
		case 0x02:
			if len(data) == 4 {
				prm.Bandwidth = int(binary.BigEndian.Uint32(data))
				p.Radio.SetParams(prm)
			}
			reply(binary.BigEndian.AppendUint32(nil, uint32(prm.Bandwidth)))
		case 0x03:
			if len(data) == 1 {
				prm.TXPower = int(data[0])
				p.Radio.SetParams(prm)
			}
			reply([]byte{byte(prm.TXPower)})
		case 0x04:
			if len(data) == 1 && data[0] >= 6 && data[0] <= 12 {
				prm.SF = int(data[0])
				p.Radio.SetParams(prm)
			}
			reply([]byte{byte(prm.SF)})
		case 0x05:
			if len(data) == 1 && data[0] >= 5 && data[0] <= 8 {
				prm.CR = int(data[0]) - 4
				p.Radio.SetParams(prm)
			}
			reply([]byte{byte(prm.CR + 4)})
		case 0x06:
			if len(data) == 1 && data[0] != 0xFF {
				p.Radio.SetOn(data[0] == 1)
			}
			p.Radio.mu.Lock()
			on := p.Radio.on
			p.Radio.mu.Unlock()
			reply([]byte{map[bool]byte{false: 0, true: 1}[on]})
		case 0x0B, 0x0C:
			v := 0.0
			if len(data) == 2 {
				v = float64(binary.BigEndian.Uint16(data)) / 10000
			}
			if cmd == 0x0B {
				st = v
			} else {
				lt = v
			}
			p.Radio.SetAirtimeLock(st, lt)
			reply(binary.BigEndian.AppendUint16(nil, uint16(math.Round(v*10000))))
		default:
			p.write(lora.AppendKISS(nil, 0xFE, nil)) // CMD_UNKNOWN
		}
	}
}

func (p *Port) serveRF95() {
	br := bufio.NewReader(p.master)
	for {
		line, err := br.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return
		}
		line = strings.TrimSpace(line)
		if line == "" || p.muted() {
			continue
		}
		out := func(s ...string) { p.write([]byte(strings.Join(s, "\r\n") + "\r\n")) }
		cmd, arg, _ := strings.Cut(line, "=")
		switch cmd {
		case "AT":
			out("+OK")
		case "AT+INFO":
			prm := p.Radio.Params()
			out("+INFO:", "firmware:      0.7.3 (ferry emulator)", "modem config:  "+strconv.Itoa(prm.SF),
				fmt.Sprintf("frequency:     %.2f", float64(prm.Frequency)/1e6), "+OK")
		case "AT+MODE":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 || n >= len(lora.RF95Modes) {
				out("+FAIL: invalid mode")
				continue
			}
			prm := p.Radio.Params()
			m := lora.RF95Modes[n]
			prm.SF, prm.Bandwidth, prm.CR = m.SF, m.Bandwidth, m.CR
			p.Radio.SetParams(prm)
			out("+OK")
		case "AT+FREQ":
			f, err := strconv.ParseFloat(arg, 64)
			if err != nil {
				out("+FAIL: invalid frequency")
				continue
			}
			prm := p.Radio.Params()
			prm.Frequency = int64(math.Round(f * 1e6))
			p.Radio.SetParams(prm)
			out(fmt.Sprintf("+FREQ: %.6f", f), "+OK")
		case "AT+TX":
			data, err := hex.DecodeString(arg)
			p.mu.Lock()
			fail := p.txError
			p.mu.Unlock()
			switch {
			case err != nil || len(data) == 0 || len(data) > 251:
				out("+FAIL: invalid payload")
			case fail:
				out("+FAIL: transmission failed")
			case !p.Radio.Transmit(data):
				out("+FAIL: busy")
			default:
				out(fmt.Sprintf("+SENT %d bytes", len(data)), "+OK")
			}
		default:
			out("+FAIL: unknown command")
		}
	}
}
