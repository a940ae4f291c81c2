package web

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"ferry/node"
)

type roomsData struct {
	Rooms []roomView
	Error string
}

// roomView is a room of the room list, rendered.
type roomView struct {
	node.RoomSummary
	HTML template.HTML
}

func (d *roomsData) live() bool { return true }

func (s *Server) roomsPage(w http.ResponseWriter, r *http.Request) error {
	d, err := s.roomList(r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "rooms", "Rooms", d)
	return nil
}

// roomList loads the rooms of the room list and renders each row, through
// the fragment cache: the row's key holds everything it shows.
func (s *Server) roomList(r *http.Request) (*roomsData, error) {
	rooms, err := s.n.Rooms(r.Context(), stateOf(r).acct.User)
	if err != nil {
		return nil, err
	}
	d := &roomsData{Rooms: make([]roomView, len(rooms))}
	t := s.tmpl.pages["rooms"]
	var buf bytes.Buffer
	for i, room := range rooms {
		v := &d.Rooms[i]
		v.RoomSummary = room
		key := strings.Join([]string{"room", room.Name, room.Title, room.Topic, strings.Join(room.Peers, ","),
			strconv.Itoa(room.Unread), when(room.Last)}, "\x00")
		if h, ok := s.frags.get(key); ok {
			v.HTML = h
			continue
		}
		buf.Reset()
		if err := t.ExecuteTemplate(&buf, "room", v); err != nil {
			return nil, err
		}
		v.HTML = template.HTML(buf.String())
		s.frags.put(key, v.HTML)
	}
	return d, nil
}

// createRoom lets any member open a room. The name is what peers see;
// the title is free text.
func (s *Server) createRoom(w http.ResponseWriter, r *http.Request) error {
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("name")))
	title := r.PostFormValue("title")
	if name == "" {
		name = slug(title)
	}
	if !node.ValidRoom(name) {
		d, err := s.roomList(r)
		if err != nil {
			return err
		}
		d.Error = "A room's short name is 1-32 lowercase letters, digits, '.', '_' or '-'."
		s.render(w, r, http.StatusBadRequest, "rooms", "Rooms", d)
		return nil
	}
	if _, err := s.n.CreateRoom(r.Context(), name, title, r.PostFormValue("topic"), stateOf(r).acct.User); err != nil {
		return err
	}
	s.hub.bump()
	return redirect(w, r, roomPath(name))
}

// slug makes a room name from a title: "Garden club!" → "garden-club".
func slug(title string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(title) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 32 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// messageView is a message as the templates show it.
type messageView struct {
	node.ChatMessage
	FromName string
	Mine     bool
	HTML     template.HTML // the message rendered, for lists
}

// conversationData is a room or a direct conversation.
type conversationData struct {
	Room     *node.Room
	With     *node.Address
	WithName string
	Messages []messageView
	List     template.HTML // the messages' HTML, joined: one action in the template rather than one per message
	Older    int64         // Before for the older page, 0 if none
	Before   int64         // this page's Before: 0 for the newest page
	Reply    *messageView
	replyID  int64       // the message a form that failed answered
	Peers    []node.Peer // for an admin's room settings
	Admin    bool
	Error    string
	Body     string
	Action   string
	MaxSize  int64
	Travel   int64 // the largest file that travels to another community
}

func (d *conversationData) live() bool { return true }

func (s *Server) roomPage(w http.ResponseWriter, r *http.Request) error {
	room, err := s.n.Room(r.Context(), mux.Vars(r)["room"])
	if err != nil {
		return err
	}
	d := &conversationData{Room: room, Action: roomPath(room.Name)}
	return s.showConversation(w, r, d, http.StatusOK)
}

// showConversation loads a page of a room or a direct conversation, marks
// it read when it is the newest page, and renders it.
func (s *Server) showConversation(w http.ResponseWriter, r *http.Request, d *conversationData, status int) error {
	ctx, user := r.Context(), stateOf(r).acct.User
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	page := node.Page{Before: before, Limit: 50}
	var es []node.ChatMessage
	var conv string
	var err error
	if d.Room != nil {
		es, err = s.n.RoomMessages(ctx, d.Room.Name, page)
		conv = node.RoomConv(d.Room.Name)
	} else {
		es, err = s.n.DirectMessages(ctx, user, *d.With, page)
		if err == nil {
			conv, err = s.n.DirectConv(ctx, *d.With)
		}
	}
	if err != nil {
		return err
	}
	names, err := s.displayNames(ctx)
	if err != nil {
		return err
	}
	d.Messages, d.Before = s.views(es, names, user), before
	if err := s.renderMessages(d.Messages); err != nil {
		return err
	}
	var list strings.Builder
	for _, m := range d.Messages {
		list.WriteString(string(m.HTML))
	}
	d.List = template.HTML(list.String())
	if len(es) == page.Limit {
		d.Older = es[0].ID
	}
	if d.With != nil {
		d.WithName = s.nameOf(*d.With, names)
	}
	id, _ := strconv.ParseInt(r.URL.Query().Get("reply"), 10, 64)
	if d.replyID != 0 {
		id = d.replyID
	}
	if id > 0 {
		d.Reply, err = s.replyView(ctx, user, id, conv, names)
		if err != nil {
			return err
		}
	}
	d.MaxSize, d.Travel = s.opts.MaxUpload, node.MaxRemoteAttachment
	if d.Room != nil && stateOf(r).acct.Admin() {
		d.Admin = true
		if d.Peers, err = s.n.Peers(ctx); err != nil {
			return err
		}
	}
	if before == 0 && len(es) > 0 {
		if err := s.n.MarkRead(ctx, user, conv, es[len(es)-1].ID); err != nil {
			return err
		}
	}
	title := "Messages"
	if d.Room != nil {
		title = d.Room.Title
	} else if d.With != nil {
		title = d.WithName
	}
	s.render(w, r, status, "conversation", title, d)
	return nil
}

// replyView loads the message a reply form answers, if it is in conv.
func (s *Server) replyView(ctx context.Context, user string, id int64, conv string, names map[string]string) (*messageView, error) {
	e, c, err := s.n.Message(ctx, user, id)
	if errors.Is(err, node.ErrNoMessage) || err == nil && c != conv {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := s.views([]node.ChatMessage{*e}, names, user)
	return &v[0], nil
}

func (s *Server) views(es []node.ChatMessage, names map[string]string, user string) []messageView {
	out := make([]messageView, len(es))
	for i, e := range es {
		out[i] = messageView{ChatMessage: e, FromName: s.nameOf(e.From, names),
			Mine: e.From.User == user && e.From.Node == s.n.Name()}
	}
	return out
}

// nameOf shows a local user by their display name, anyone else by their
// address.
func (s *Server) nameOf(a node.Address, names map[string]string) string {
	if a.Node == s.n.Name() {
		if d, ok := names[a.User]; ok {
			return d
		}
	}
	return a.String()
}

func (s *Server) postInRoom(w http.ResponseWriter, r *http.Request) error {
	room, err := s.n.Room(r.Context(), mux.Vars(r)["room"])
	if err != nil {
		return err
	}
	d := &conversationData{Room: room, Action: roomPath(room.Name)}
	return s.post(w, r, d, node.Draft{Room: room.Name})
}

// post reads a message form (with an attachment when the form is
// multipart), stores the message and goes back to the conversation. A
// message that cannot be sent shows the form again with the text kept.
func (s *Server) post(w http.ResponseWriter, r *http.Request, d *conversationData, draft node.Draft) error {
	acct := stateOf(r).acct
	f, err := s.readForm(r, "file")
	if err != nil {
		return err
	}
	defer f.discard()
	draft.From, draft.Body, draft.Quota = acct.User, strings.ReplaceAll(f.values["body"], "\r\n", "\n"), s.quota(acct)
	draft.ReplyTo, _ = strconv.ParseInt(f.values["reply_to"], 10, 64)
	if f.file != nil {
		draft.Attachments = []node.NewFile{*f.file}
	}
	if strings.TrimSpace(draft.Body) == "" && f.file == nil {
		return redirect(w, r, d.Action+"#compose")
	}
	_, _, err = s.n.Post(r.Context(), draft)
	if err != nil {
		he := asHTTPError(err)
		if he.status >= 500 {
			return err
		}
		d.Error, d.Body, d.replyID = he.msg, draft.Body, draft.ReplyTo
		return s.showConversation(w, r, d, he.status)
	}
	s.hub.bump()
	return redirect(w, r, d.Action+"#latest")
}
