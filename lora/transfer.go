package lora

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Link frame types, byte 0 of every frame (wire values: pinned by
// TestFrameGolden). FlagTurn on a frame hands the turn to the peer.
const (
	TypeOffer = 0x01
	TypeData  = 0x02
	TypeAck   = 0x03
	FlagTurn  = 0x80
	// FlagAck on a Link's DATA frame: it carries the low 16 bits of the
	// cumulative ACK (the next sequence expected), so that a turn with
	// data and nothing out of order needs no ACK frame (see Link).
	FlagAck = 0x40
)

// HeaderSize is the link header: type (1), transfer ID (4), fragment
// index (2), all big-endian.
const HeaderSize = 7

// FragmentSize is the data in one DATA frame.
const FragmentSize = MaxFrame - HeaderSize // 244

// MaxTransfer is the largest transfer: an ACK bitmap fills one frame.
const MaxTransfer = FragmentSize * 8 * FragmentSize // 476,288 bytes

// Errors of transfers.
var (
	ErrNoPeer   = errors.New("lora: peer does not answer")
	ErrCorrupt  = errors.New("lora: transfer does not match its SHA-256")
	ErrTooLarge = errors.New("lora: transfer larger than 476,288 bytes")
)

// frame is a decoded link frame.
type frame struct {
	typ  byte
	turn bool
	ack  bool // FlagAck
	// Link DATA frames: the low 16 bits of the sequence and of the ACK.
	seq16, ack16 uint16
	id           uint32
	index        uint16
	body         []byte
}

func appendFrame(dst []byte, typ byte, turn bool, id uint32, index uint16, body []byte) []byte {
	if turn {
		typ |= FlagTurn
	}
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = binary.BigEndian.AppendUint16(dst, index)
	return append(dst, body...)
}

func parseFrame(b []byte) (frame, bool) {
	if len(b) < HeaderSize || len(b) > MaxFrame {
		return frame{}, false
	}
	f := frame{typ: b[0] &^ FlagTurn, turn: b[0]&FlagTurn != 0,
		id: binary.BigEndian.Uint32(b[1:]), index: binary.BigEndian.Uint16(b[5:]), body: b[HeaderSize:]}
	switch f.typ {
	case TypeOffer:
		return f, len(f.body) == 4+32
	case TypeData:
		return f, len(f.body) > 0
	case TypeAck:
		return f, len(f.body) > 0
	case TypeFin:
		return f, len(f.body) == 0
	}
	return frame{}, false
}

// TransferConfig sets up one end of a transfer.
type TransferConfig struct {
	Modem  Modem
	Params Params  // for time on air
	Budget *Budget // this end's duty cycle; nil for none
	// Burst is the most DATA frames sent before the turn passes; 0
	// sizes bursts to the budget: as many full frames as fit in half
	// the window's budget, at least 4, at most 64.
	Burst int
	// Retries is how many turns may pass unanswered before ErrNoPeer; 0 means 5.
	Retries int
	Logger  *slog.Logger
	// Stats, updated as the transfer runs.
	Stats *TransferStats
}

// TransferStats counts a transfer's frames.
type TransferStats struct {
	DataSent, DataResent, Offers, Acks int
	Airtime                            time.Duration
}

func (c *TransferConfig) burst() int {
	if c.Burst > 0 {
		return c.Burst
	}
	if c.Budget == nil {
		return 64
	}
	n := int(c.Budget.Limit() / 2 / TimeOnAir(c.Params, MaxFrame))
	return min(max(n, 4), 64)
}

func (c *TransferConfig) retries() int {
	if c.Retries > 0 {
		return c.Retries
	}
	return 5
}

// send puts one frame on air within the budget and waits until it left.
func (c *TransferConfig) send(ctx context.Context, b []byte) error {
	d := TimeOnAir(c.Params, len(b))
	if _, err := c.Budget.Acquire(ctx, d); err != nil {
		return err
	}
	if err := c.Modem.Send(ctx, b); err != nil {
		return err
	}
	if c.Stats != nil {
		c.Stats.Airtime += d
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recv waits up to d for a valid frame of transfer id (any id if id is 0).
func (c *TransferConfig) recv(ctx context.Context, d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		p, err := c.Modem.Recv(ctx)
		if err != nil {
			return frame{}, err
		}
		if f, ok := parseFrame(p.Data); ok {
			return f, nil
		}
	}
}

// turnWait is how long one end waits for the other's turn: the other's
// longest burst on air plus slack.
func (c *TransferConfig) turnWait(frames int) time.Duration {
	return time.Duration(frames+2)*TimeOnAir(c.Params, MaxFrame) + 2*time.Second
}

// Send transfers data to the peer as transfer id, resuming where the
// receiver's stored fragments end. It returns when the receiver
// acknowledged every fragment, or ErrNoPeer.
func Send(ctx context.Context, c TransferConfig, id uint32, data []byte) error {
	if len(data) > MaxTransfer {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	if c.Stats == nil {
		c.Stats = &TransferStats{}
	}
	n := (len(data) + FragmentSize - 1) / FragmentSize
	sum := sha256.Sum256(data)
	offer := appendFrame(nil, TypeOffer, true, id, uint16(n), binary.BigEndian.AppendUint32(nil, uint32(len(data))))
	offer = append(offer, sum[:]...)
	sent, acked := make([]bool, n), make([]bool, n)
	burst := c.burst()
	misses, acks := 0, 0
	var pending []int // fragments of the last burst
	merge := func(f frame) {
		for k := range n {
			if k/8 < len(f.body) && f.body[k/8]&(1<<(k%8)) != 0 {
				acked[k] = true
			}
		}
	}
	for {
		// Our turn: after an ACK, send a burst; without one, offer (poll).
		need := TimeOnAir(c.Params, len(offer))
		if pending != nil {
			need = time.Duration(len(pending)) * TimeOnAir(c.Params, MaxFrame)
		}
		if err := c.Budget.Wait(ctx, need); err != nil {
			return err
		}
		// ACKs heard while the budget held us answer an earlier turn (the
		// peer ACKs on its own when our turn's last frame is lost): they
		// count, but are not the answer to the turn about to start, or
		// the sender would resend a burst that arrived.
		for {
			f, err := c.recv(ctx, time.Millisecond)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				break
			}
			if f.typ == TypeAck && f.id == id {
				merge(f)
			}
		}
		if pending != nil {
			keep := pending[:0]
			for _, k := range pending {
				if !acked[k] {
					keep = append(keep, k)
				}
			}
			pending = keep
			if len(pending) == 0 {
				if !slices.Contains(acked, false) {
					return nil
				}
				pending = nil
			}
		}
		if pending == nil {
			c.Stats.Offers++
			if err := c.send(ctx, offer); err != nil {
				return err
			}
		} else {
			for i, k := range pending {
				lo, hi := k*FragmentSize, min((k+1)*FragmentSize, len(data))
				b := appendFrame(nil, TypeData, i == len(pending)-1, id, uint16(k), data[lo:hi])
				if sent[k] {
					c.Stats.DataResent++
				}
				sent[k] = true
				c.Stats.DataSent++
				if err := c.send(ctx, b); err != nil {
					return err
				}
			}
		}
		// The peer's turn: wait for its ACK.
		f, err := c.recv(ctx, c.turnWait(1))
		for err == nil && !(f.typ == TypeAck && f.id == id) {
			f, err = c.recv(ctx, c.turnWait(1))
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			misses++
			if misses > c.retries() {
				return fmt.Errorf("%w: %d turns without an ACK for transfer %08x", ErrNoPeer, misses, id)
			}
			// The ACK was lost (or the burst's last frame). Once the
			// receiver has the transfer open, the turn is better spent on
			// fragments never sent than on a poll: the ACK after them
			// reports the earlier ones too. Only when none are left, or
			// after two silent turns, poll with an OFFER.
			pending = nil
			if acks > 0 && misses < 3 {
				for k := 0; k < n && len(pending) < burst; k++ {
					if !sent[k] {
						pending = append(pending, k)
					}
				}
			}
			continue
		}
		misses = 0
		acks++
		c.Stats.Acks++
		// Arrived fragments stay arrived (the receiver stores them before
		// it acknowledges), so ACKs merge.
		merge(f)
		pending = pending[:0]
		for k := 0; k < n && len(pending) < burst; k++ {
			if !acked[k] {
				pending = append(pending, k)
			}
		}
		if len(pending) == 0 {
			if int(f.index) == n {
				return nil
			}
			pending = nil
		}
	}
}

// A Receiver keeps the fragments of incoming transfers in a directory,
// so that a transfer cut off resumes without resending what arrived:
// <id>.part holds the data at its offsets, <id>.map one byte per
// fragment (1 = arrived), written before the ACK that reports it. A
// complete transfer leaves an empty <id>.done, so that an OFFER repeated
// by a sender that missed the last ACK is answered without taking the
// data in twice; the caller removes old markers.
type Receiver struct {
	Dir string
	cfg TransferConfig
}

// NewReceiver returns a receiver storing fragments in dir.
func NewReceiver(dir string, c TransferConfig) *Receiver {
	return &Receiver{Dir: dir, cfg: c}
}

type incoming struct {
	id   uint32
	size int
	sum  [32]byte
	have []byte
	part *os.File
	n    int
	done bool // taken in by an earlier Receive: only ACK it
}

func (r *Receiver) open(f frame) (*incoming, error) {
	in := &incoming{id: f.id, size: int(binary.BigEndian.Uint32(f.body)), n: int(f.index)}
	copy(in.sum[:], f.body[4:])
	if in.size > MaxTransfer || in.n != (in.size+FragmentSize-1)/FragmentSize {
		return nil, fmt.Errorf("lora: offer of %d bytes in %d fragments refused", in.size, in.n)
	}
	base := filepath.Join(r.Dir, fmt.Sprintf("%08x-%s", f.id, hex.EncodeToString(in.sum[:4])))
	var err error
	if in.part, err = os.OpenFile(base+".part", os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	in.have, _ = os.ReadFile(base + ".map")
	if len(in.have) != in.n {
		in.have = make([]byte, in.n)
	}
	if _, err := os.Stat(base + ".done"); err == nil {
		in.done = true
		for k := range in.have {
			in.have[k] = 1
		}
	}
	return in, nil
}

func (in *incoming) mapPath() string { return in.part.Name()[:len(in.part.Name())-5] + ".map" }

func (in *incoming) store(f frame) error {
	k := int(f.index)
	if k >= in.n || in.have[k] == 1 {
		return nil
	}
	want := min(FragmentSize, in.size-k*FragmentSize)
	if len(f.body) != want {
		return nil // truncated: not stored, asked again
	}
	if _, err := in.part.WriteAt(f.body, int64(k*FragmentSize)); err != nil {
		return err
	}
	in.have[k] = 1
	return nil
}

func (in *incoming) ack() []byte {
	bm := make([]byte, max((in.n+7)/8, 1))
	count := 0
	for k, h := range in.have {
		if h == 1 {
			bm[k/8] |= 1 << (k % 8)
			count++
		}
	}
	return appendFrame(nil, TypeAck, true, in.id, uint16(count), bm)
}

// Receive waits for one transfer and returns its data once complete and
// its SHA-256 matches; the stored fragments are then removed.
func (r *Receiver) Receive(ctx context.Context) ([]byte, error) {
	c := r.cfg
	var in *incoming
	defer func() {
		if in != nil {
			in.part.Close()
		}
	}()
	dirty := false
	for {
		f, err := c.recv(ctx, c.turnWait(c.burst()))
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			if in != nil && dirty { // the burst's last frame was lost
				if err := r.acknowledge(ctx, in); err != nil {
					return nil, err
				}
				dirty = false
			}
			continue
		}
		switch f.typ {
		case TypeOffer:
			if in == nil || in.id != f.id {
				if in != nil {
					in.part.Close()
				}
				if in, err = r.open(f); err != nil {
					return nil, err
				}
			}
		case TypeData:
			if in == nil || f.id != in.id {
				continue
			}
			if err := in.store(f); err != nil {
				return nil, err
			}
			dirty = true
		default:
			continue
		}
		if !f.turn {
			continue
		}
		if err := r.acknowledge(ctx, in); err != nil {
			return nil, err
		}
		dirty = false
		if in.done {
			continue // the sender missed our last ACK and asked again
		}
		if !bytes.Contains(in.have, []byte{0}) {
			data := make([]byte, in.size)
			if _, err := in.part.ReadAt(data, 0); err != nil && in.size > 0 {
				return nil, err
			}
			if sha256.Sum256(data) != in.sum {
				os.Remove(in.mapPath())
				return nil, fmt.Errorf("%w: transfer %08x", ErrCorrupt, in.id)
			}
			// The sender may have missed the final ACK and offer again:
			// a .done marker lets a later Receive answer it in full.
			base := in.part.Name()[:len(in.part.Name())-5]
			if err := os.WriteFile(base+".done", nil, 0o600); err != nil {
				return nil, err
			}
			os.Remove(in.mapPath())
			os.Remove(in.part.Name())
			return data, nil
		}
	}
}

func (r *Receiver) acknowledge(ctx context.Context, in *incoming) error {
	if err := os.WriteFile(in.mapPath(), in.have, 0o600); err != nil {
		return err
	}
	if r.cfg.Stats != nil {
		r.cfg.Stats.Acks++
	}
	return r.cfg.send(ctx, in.ack())
}
