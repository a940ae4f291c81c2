package web

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// limiter slows down clients that fail to log in: after freeFails
// failures, each further attempt must wait twice as long as the last, up
// to maxDelay. It counts per client address, never per account, so that
// someone guessing a password from one machine does not lock the real
// user out on another. A success clears the client's record.
type limiter struct {
	mu      sync.Mutex
	now     func() time.Time
	clients map[string]*strikes
}

type strikes struct {
	fails int
	until time.Time // no attempt before then
	last  time.Time
}

const (
	freeFails     = 5
	firstDelay    = time.Second
	maxDelay      = 15 * time.Minute
	forgetAfter   = time.Hour
	maxLimitedIPs = 10000
)

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, clients: map[string]*strikes{}}
}

// wait returns how long client must wait before its next attempt; 0 lets
// it try now.
func (l *limiter) wait(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.clients[client]
	if st == nil {
		return 0
	}
	return max(st.until.Sub(l.now()), 0)
}

// fail records a failed attempt.
func (l *limiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.clients) >= maxLimitedIPs {
		l.sweep(now)
	}
	st := l.clients[client]
	if st == nil {
		st = &strikes{}
		l.clients[client] = st
	}
	st.fails++
	st.last = now
	if st.fails >= freeFails {
		d := maxDelay
		if shift := st.fails - freeFails; shift < 20 {
			d = min(firstDelay<<shift, maxDelay)
		}
		st.until = now.Add(d)
	}
}

// ok clears a client's record after a success.
func (l *limiter) ok(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.clients, client)
}

func (l *limiter) sweep(now time.Time) {
	for k, st := range l.clients {
		if now.Sub(st.last) > forgetAfter && now.After(st.until) {
			delete(l.clients, k)
		}
	}
	// Under a flood of addresses, forget the oldest half.
	if len(l.clients) >= maxLimitedIPs {
		var cut time.Time
		for _, st := range l.clients {
			if cut.IsZero() || st.last.Before(cut) {
				cut = st.last
			}
		}
		cut = cut.Add(now.Sub(cut) / 2)
		for k, st := range l.clients {
			if st.last.Before(cut) {
				delete(l.clients, k)
			}
		}
	}
}

// clientKey names the client of a request by its address: an IPv4
// address, or the /64 prefix of an IPv6 one (a single machine often holds
// a whole /64). Forwarding headers are not trusted.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}
