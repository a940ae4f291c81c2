package web

import (
	_ "embed"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"ferry/bundle"
	"ferry/node"
)

// The map page draws every community of the network directory at its
// announced location on a world outline shipped inside the binary, with a
// line for every contact the announcements report, coloured by carrier
// and faded by age; and lists the communities with their last contact and
// what waits for them here. It is one server-rendered SVG: no tiles, no
// Internet, no JavaScript.

// worldOutline is Natural Earth's 1:110m countries (public domain), as SVG
// path data in tenths of a degree, made by tools/worldmap.
//
//go:embed map_world.txt
var worldOutline string

// worldPath is worldOutline without its comment line, in one string.
var worldPath = func() string {
	var b strings.Builder
	for _, l := range strings.Split(worldOutline, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}()

// The map's frame in tenths of a degree: x = (lon+180)*10, y = (90-lat)*10,
// the world cut at 85°N and 60°S (no community lives further).
const (
	mapTop    = 50   // 85°N
	mapBottom = 1500 // 60°S
	mapWidth  = 3600
)

// carrierColours are the colours of links by carrier; the legend shows them.
var carrierColours = []struct{ Carrier, Colour string }{
	{"usb", "#d9822b"},
	{"tcp", "#2b6cd9"},
	{"lora", "#8e44ad"},
	{"ble", "#16a085"},
	{"file", "#6b7280"},
}

func carrierColour(c string) string {
	for _, cc := range carrierColours {
		if cc.Carrier == c {
			return cc.Colour
		}
	}
	return "#111827"
}

// ageOpacity fades a link with the age of its last contact.
func ageOpacity(age time.Duration) (float64, string) {
	switch {
	case age < 24*time.Hour:
		return 1, "today"
	case age < 7*24*time.Hour:
		return 0.7, "this week"
	case age < 30*24*time.Hour:
		return 0.45, "this month"
	}
	return 0.2, "older"
}

type mapData struct {
	World     bool // the whole world rather than the communities' area
	ViewBox   string
	Outline   string
	R, Font   float64 // circle radius and label size in map units
	Dots      []mapDot
	Lines     []mapLine
	Unplaced  []mapRow // communities with no location
	Rows      []mapRow
	Legend    []legendItem
	Ages      []ageItem
	Admin     bool
	Directory int
	Here      *node.Location // this node's location, for the admin's form
}

type mapDot struct {
	X, Y   float64
	Name   string
	URL    string
	Trust  string
	LabelY float64
}

type mapLine struct {
	X1, Y1, X2, Y2 float64
	From, To       string
	Carrier        string
	Colour         string
	Opacity        float64
	Title          string
}

type legendItem struct{ Carrier, Colour string }
type ageItem struct {
	Label   string
	Opacity float64
}

// mapRow is one community in the list view.
type mapRow struct {
	node.DirectoryEntry
	URL         string
	LastContact time.Time
	Carrier     string
	Bytes       uint64
	Via         string // who reported the contact, when it is not this node's own
}

func project(l *node.Location) (float64, float64) {
	return (l.Lon + 180) * 10, (90 - l.Lat) * 10
}

func communityURL(id bundle.NodeID) string { return "/map/" + id.String() }

func (s *Server) mapPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	dir, err := s.n.Directory(ctx)
	if err != nil {
		return err
	}
	contacts, err := s.n.Contacts(ctx)
	if err != nil {
		return err
	}
	d := &mapData{World: r.URL.Query().Get("view") == "world", Outline: worldPath, Admin: stateOf(r).acct.Admin(),
		Directory: len(dir)}
	if d.Admin {
		if d.Here, err = s.n.Location(ctx); err != nil {
			return err
		}
	}
	now := s.now()
	self := s.n.ID()
	byID := map[bundle.NodeID]*node.DirectoryEntry{}
	for i := range dir {
		byID[dir[i].ID] = &dir[i]
	}
	mine := map[bundle.NodeID]bundle.Heard{}
	for _, c := range contacts {
		mine[c.Node] = c
	}

	// Rows: this node's own contact with a community when it has one,
	// else the newest contact any announcement reports with it.
	for _, e := range dir {
		row := mapRow{DirectoryEntry: e, URL: communityURL(e.ID)}
		if c, ok := mine[e.ID]; ok {
			row.LastContact, row.Carrier, row.Bytes = c.Last, c.Carrier, c.Bytes
		}
		if e.ID != self && row.LastContact.IsZero() {
			for _, o := range dir {
				for _, l := range o.Links {
					if (l.To == e.ID || l.From == e.ID) && l.Last.After(row.LastContact) {
						row.LastContact, row.Carrier, row.Bytes = l.Last, l.Carrier, l.Bytes
						row.Via = o.DisplayName()
					}
				}
			}
		}
		if e.Location == nil {
			d.Unplaced = append(d.Unplaced, row)
		}
		d.Rows = append(d.Rows, row)
	}

	// The frame: the located communities with a margin, or the world.
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, e := range dir {
		if e.Location == nil {
			continue
		}
		x, y := project(e.Location)
		minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
	}
	vx, vy, vw, vh := 0.0, float64(mapTop), float64(mapWidth), float64(mapBottom-mapTop)
	if !d.World && !math.IsInf(minX, 1) {
		w, h := maxX-minX, maxY-minY
		w = max(w*1.4, 60) // at least 6° across
		h = max(h*1.3, w*0.6)
		w = max(w, h/0.9)
		cx, cy := (minX+maxX)/2, (minY+maxY)/2
		vx, vy, vw, vh = cx-w/2, cy-h/2, w, h
	}
	d.ViewBox = fmt.Sprintf("%.1f %.1f %.1f %.1f", vx, vy, vw, vh)
	d.R, d.Font = vw/90, vw/32

	for _, e := range dir {
		if e.Location == nil {
			continue
		}
		x, y := project(e.Location)
		d.Dots = append(d.Dots, mapDot{X: x, Y: y, Name: e.DisplayName(), URL: communityURL(e.ID), Trust: string(e.Trust), LabelY: y - d.R*1.6})
	}
	// One line per pair of communities: the newest contact either reported.
	type pair struct{ a, b bundle.NodeID }
	best := map[pair]node.Link{}
	var order []pair
	for _, e := range dir {
		for _, l := range e.Links {
			p := pair{l.From, l.To}
			if string(p.a[:]) > string(p.b[:]) {
				p = pair{l.To, l.From}
			}
			old, ok := best[p]
			if !ok {
				order = append(order, p)
			}
			if !ok || l.Last.After(old.Last) {
				best[p] = l
			}
		}
	}
	for _, p := range order {
		l := best[p]
		a, b := byID[p.a], byID[p.b]
		if a == nil || b == nil || a.Location == nil || b.Location == nil {
			continue
		}
		x1, y1 := project(a.Location)
		x2, y2 := project(b.Location)
		op, _ := ageOpacity(now.Sub(l.Last))
		d.Lines = append(d.Lines, mapLine{X1: x1, Y1: y1, X2: x2, Y2: y2, From: a.DisplayName(), To: b.DisplayName(),
			Carrier: l.Carrier, Colour: carrierColour(l.Carrier), Opacity: op,
			Title: fmt.Sprintf("%s – %s: last by %s, %s", a.DisplayName(), b.DisplayName(), orUnknown(l.Carrier), l.Last.UTC().Format("2 Jan 2006 15:04 UTC"))})
	}
	for _, c := range carrierColours {
		d.Legend = append(d.Legend, legendItem(c))
	}
	for _, age := range []time.Duration{0, 2 * 24 * time.Hour, 10 * 24 * time.Hour, 60 * 24 * time.Hour} {
		op, label := ageOpacity(age)
		d.Ages = append(d.Ages, ageItem{Label: label, Opacity: op})
	}
	s.render(w, r, http.StatusOK, "map", "Network map", d)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown carrier"
	}
	return s
}

// communityData is the page of one community of the directory.
type communityData struct {
	E     node.DirectoryEntry
	Admin bool
}

func (s *Server) communityPage(w http.ResponseWriter, r *http.Request) error {
	e, err := s.n.DirectoryEntry(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return errNotFound
	}
	s.render(w, r, http.StatusOK, "map_community", e.DisplayName(), &communityData{E: *e, Admin: stateOf(r).acct.Admin()})
	return nil
}

// setLocation sets the coarse location this node announces, and announces
// it at once so that the map shows it.
func (s *Server) setLocation(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var loc *node.Location
	if r.PostFormValue("clear") == "" {
		lat, err1 := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("lat")), 64)
		lon, err2 := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("lon")), 64)
		if err1 != nil || err2 != nil {
			return &httpError{status: http.StatusBadRequest, msg: "Give the latitude and longitude in degrees, e.g. 46.2 and 6.1."}
		}
		loc = &node.Location{Lat: lat, Lon: lon}
	}
	if err := s.n.SetLocation(ctx, loc); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "That location was not set: " + strings.TrimPrefix(err.Error(), "node: ")}
	}
	var carriers []string
	if self, err := s.n.DirectoryEntry(ctx, s.n.ID().String()); err == nil {
		carriers = self.Carriers
	}
	if _, err := s.n.Announce(ctx, node.AnnounceOptions{Carriers: carriers}); err != nil {
		return err
	}
	s.hub.bump()
	return redirect(w, r, "/map?ok=located")
}

// approveCommunity trusts a community that an announcement introduced.
func (s *Server) approveCommunity(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if _, err := s.n.Approve(r.Context(), id, strings.TrimSpace(r.PostFormValue("as"))); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "It was not approved: " + strings.TrimPrefix(err.Error(), "node: ")}
	}
	s.hub.bump()
	return redirect(w, r, "/map/"+id+"?ok=approved")
}
