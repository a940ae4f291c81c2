package lora

import (
	"fmt"
	"math"
	"time"
)

// MaxFrame is the largest LoRa payload ferry sends: the SX127x FIFO holds
// 255 bytes and RNode firmware keeps 4 for its own use.
const MaxFrame = 251

// LDRO says whether low-data-rate optimisation is on.
type LDRO int

// LDRO modes. LDROAuto turns it on when a symbol lasts 16 ms or more
// (SF11 and SF12 at 125 kHz), as the Semtech data sheets require.
const (
	LDROAuto LDRO = 0
	LDROOn   LDRO = 1
	LDROOff  LDRO = 2
)

// Params are the radio settings that decide time on air. The zero value
// of each optional field is the common LoRa default: explicit header,
// CRC on, 8 preamble symbols, automatic low-data-rate optimisation.
type Params struct {
	SF        int   // spreading factor, 6..12
	Bandwidth int   // Hz: 7800 .. 500000; 125000 usually
	CR        int   // coding rate 4/(4+CR): 1..4 for 4/5..4/8
	Preamble  int   // preamble symbols; 0 means 8
	Implicit  bool  // implicit header (no PHY header)
	NoCRC     bool  // payload CRC off
	LDRO      LDRO  // low-data-rate optimisation
	TXPower   int   // dBm, for the modem; no effect on time on air
	Frequency int64 // Hz, for the modem and the region's sub-band
}

// Validate reports settings a LoRa radio cannot use.
func (p Params) Validate() error {
	switch {
	case p.SF < 6 || p.SF > 12:
		return fmt.Errorf("lora: spreading factor %d outside 6..12", p.SF)
	case p.Bandwidth < 7800 || p.Bandwidth > 500000:
		return fmt.Errorf("lora: bandwidth %d Hz outside 7.8..500 kHz", p.Bandwidth)
	case p.CR < 1 || p.CR > 4:
		return fmt.Errorf("lora: coding rate 4/%d outside 4/5..4/8", p.CR+4)
	}
	return nil
}

// Symbol returns the duration of one symbol, 2^SF / BW.
func (p Params) Symbol() time.Duration {
	return time.Duration(float64(int64(1)<<p.SF) / float64(p.Bandwidth) * float64(time.Second))
}

func (p Params) ldro() bool {
	switch p.LDRO {
	case LDROOn:
		return true
	case LDROOff:
		return false
	}
	return p.Symbol() >= 16*time.Millisecond
}

// TimeOnAir returns how long a frame of n payload bytes occupies the
// channel, by the formula of Semtech's SX1276 data sheet (§4.1.1.7) and
// AN1200.13:
//
//	Tsym      = 2^SF / BW
//	Tpreamble = (Npreamble + 4.25) · Tsym
//	Npayload  = 8 + max(ceil((8n − 4SF + 28 + 16·CRC − 20·IH) / (4(SF − 2·DE))) · (CR + 4), 0)
//	T         = Tpreamble + Npayload · Tsym
func TimeOnAir(p Params, n int) time.Duration {
	pre := p.Preamble
	if pre == 0 {
		pre = 8
	}
	crc, ih, de := 1, 0, 0
	if p.NoCRC {
		crc = 0
	}
	if p.Implicit {
		ih = 1
	}
	if p.ldro() {
		de = 1
	}
	num := float64(8*n - 4*p.SF + 28 + 16*crc - 20*ih)
	den := float64(4 * (p.SF - 2*de))
	sym := 8 + math.Max(math.Ceil(num/den)*float64(p.CR+4), 0)
	tsym := float64(int64(1)<<p.SF) / float64(p.Bandwidth)
	sec := (float64(pre)+4.25)*tsym + sym*tsym
	return time.Duration(math.Round(sec * 1e9))
}

// Rate returns the bytes per second the radio moves while transmitting
// back-to-back frames of MaxFrame bytes.
func (p Params) Rate() float64 {
	return float64(MaxFrame) / TimeOnAir(p, MaxFrame).Seconds()
}
