package web

import (
	"net/http"
	"strings"

	"ferry/node"
)

type searchData struct {
	Query string
	Hits  []hitView
	Files []node.File
	Done  bool
}

type hitView struct {
	node.Hit
	FromName string
	Link     string
	Where    string
}

// searchPage searches the messages and files the member may see.
func (s *Server) searchPage(w http.ResponseWriter, r *http.Request) error {
	ctx, user := r.Context(), stateOf(r).acct.User
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		q = q[:200]
	}
	d := &searchData{Query: q}
	if q != "" {
		d.Done = true
		hits, err := s.n.Search(ctx, user, q, 50)
		if err != nil {
			return err
		}
		names, err := s.displayNames(ctx)
		if err != nil {
			return err
		}
		for _, h := range hits {
			v := hitView{Hit: h, FromName: s.nameOf(h.From, names)}
			if h.Room != "" {
				v.Link, v.Where = roomPath(h.Room), "#"+h.Room
			} else {
				v.Link, v.Where = dmPath(h.With), s.nameOf(h.With, names)
			}
			v.Link += "?before=" + itoa(h.ID+25) + "#m" + itoa(h.ID)
			d.Hits = append(d.Hits, v)
		}
		if d.Files, err = s.n.SearchFiles(ctx, user, q, 20); err != nil {
			return err
		}
	}
	s.render(w, r, http.StatusOK, "search", "Search", d)
	return nil
}
