package lora

import (
	"sync"
	"time"
)

// Status is what a radio carrier shows on the network page: its
// settings, the last frame's signal, the airtime used in the sliding
// window against the budget, and what waits to be sent.
type Status struct {
	Port   string `json:"port"`
	Modem  string `json:"modem"` // rnode or rf95
	Region string `json:"region"`
	Params Params `json:"params"`
	// State says what the radio does now: "listening", "in a session",
	// "waiting for the next contact", "stopped".
	State string `json:"state"`
	// Peer is the node of the current or last session.
	Peer string `json:"peer,omitempty"`
	// RSSI (dBm) and SNR (dB) of the last frame received; Heard is when
	// (zero: nothing heard yet).
	RSSI  int       `json:"rssi"`
	SNR   float64   `json:"snr"`
	Heard time.Time `json:"heard"`
	// Airtime is this radio's time on air in the window ending now;
	// Budget what the region allows per Window (0: no duty cycle).
	Airtime time.Duration `json:"airtime"`
	Budget  time.Duration `json:"budget"`
	Window  time.Duration `json:"window"`
	// Queue is the bytes of session frames waiting to be sent or
	// acknowledged on the current link.
	Queue int `json:"queue"`
	// Sent and Received count frames over the modem's life.
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	// Sessions counts sessions that reached the peer; LastError is why
	// the last one failed.
	Sessions  int    `json:"sessions"`
	LastError string `json:"last_error,omitempty"`
}

// statser is a driver that counts frames and keeps the last signal.
type statser interface{ Stats() Stats }

// A Monitor keeps the Status of one radio for a carrier that runs
// sessions over it one after another. It is safe for concurrent use.
type Monitor struct {
	mu     sync.Mutex
	st     Status
	modem  Modem
	budget *Budget
	link   *Link
}

// NewMonitor starts the status of a radio whose settings st gives.
func NewMonitor(st Status, m Modem, b *Budget) *Monitor {
	st.Budget = b.Limit()
	if b != nil {
		st.Window = b.window
	}
	return &Monitor{st: st, modem: m, budget: b}
}

// SetLink records the link of the session now running (nil: none).
func (m *Monitor) SetLink(l *Link) {
	m.mu.Lock()
	m.link = l
	m.mu.Unlock()
}

// SetState records what the radio does now.
func (m *Monitor) SetState(state string) {
	m.mu.Lock()
	m.st.State = state
	m.mu.Unlock()
}

// Done records a session's end: the peer's name and its error.
func (m *Monitor) Done(peer string, reached bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if peer != "" {
		m.st.Peer = peer
	}
	if reached {
		m.st.Sessions++
	}
	m.st.LastError = ""
	if err != nil {
		m.st.LastError = err.Error()
	}
}

// Status returns the radio's status now.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	if s, ok := m.modem.(statser); ok {
		cur := s.Stats()
		st.Heard = cur.Heard
		st.RSSI, st.SNR, st.Sent, st.Received = cur.RSSI, cur.SNR, cur.Sent, cur.Received
	}
	st.Airtime = m.budget.Used(time.Now())
	if m.link != nil {
		st.Queue = m.link.Queue()
	}
	return st
}
