package web

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"
)

// fragments caches the HTML of messages as the conversation template
// renders them. A message changes only in its delivery state, and how it
// shows depends on who looks (mine or not), on its author's display name
// and on the day (times show as "15:04" today, as a date later): all of
// it is in the key, so an entry is never stale, only unused. Rooms are
// read far more than written, and html/template's escaping is the most
// expensive part of a page.
type fragments struct {
	mu       sync.Mutex
	cur, old map[string]template.HTML
	max      int // entries per generation
}

func newFragments(max int) *fragments {
	return &fragments{cur: map[string]template.HTML{}, max: max}
}

func (f *fragments) get(key string) (template.HTML, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.cur[key]; ok {
		return h, true
	}
	h, ok := f.old[key]
	if ok {
		f.putLocked(key, h)
	}
	return h, ok
}

func (f *fragments) put(key string, h template.HTML) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putLocked(key, h)
}

// putLocked adds an entry; when the current generation is full it becomes
// the old one, and the old one is dropped.
func (f *fragments) putLocked(key string, h template.HTML) {
	if len(f.cur) >= f.max {
		f.old, f.cur = f.cur, make(map[string]template.HTML, f.max)
	}
	f.cur[key] = h
}

func fragmentKey(v *messageView, day string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d|%t|%s|%s", v.ID, v.Mine, v.FromName, day)
	for _, d := range v.Deliveries {
		fmt.Fprintf(&b, "|%s,%s,%d,%s,%d,%s", d.Node, d.State, d.At.UnixMilli(), d.Carrier, d.CarriedAt.UnixMilli(), d.Reason)
	}
	return b.String()
}

// renderMessages fills the HTML of each message, from the cache or by
// running the "message" template.
func (s *Server) renderMessages(vs []messageView) error {
	day := time.Now().Format(time.DateOnly)
	t := s.tmpl.pages["conversation"]
	var buf bytes.Buffer
	for i := range vs {
		key := fragmentKey(&vs[i], day)
		if h, ok := s.frags.get(key); ok {
			vs[i].HTML = h
			continue
		}
		buf.Reset()
		if err := t.ExecuteTemplate(&buf, "message", &vs[i]); err != nil {
			return err
		}
		vs[i].HTML = template.HTML(buf.String())
		s.frags.put(key, vs[i].HTML)
	}
	return nil
}
