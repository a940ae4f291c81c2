package web

import (
	"net/http"

	"github.com/gorilla/mux"
)

// routes builds the router. Every route belongs to one of three
// subrouters, whose middleware decides who may use it: public (login,
// setup, invites, resets, assets), members, admins. Sessions and the
// CSRF check apply to all of them.
func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.StrictSlash(false)
	r.NotFoundHandler = s.session(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &httpError{status: http.StatusNotFound, msg: "There is nothing here."})
	}))
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
	r.Use(s.session, s.csrf)

	pub := r.NewRoute().Subrouter()
	pub.Handle("/", s.handle(s.home)).Methods("GET")
	pub.Handle("/login", s.handle(s.loginPage)).Methods("GET")
	pub.Handle("/login", s.handle(s.login)).Methods("POST")
	pub.Handle("/setup", s.handle(s.setupPage)).Methods("GET")
	pub.Handle("/setup", s.handle(s.setup)).Methods("POST")
	pub.Handle("/invite/{code}", s.handle(s.invitePage)).Methods("GET")
	pub.Handle("/invite/{code}", s.handle(s.acceptInvite)).Methods("POST")
	pub.Handle("/reset/{code}", s.handle(s.resetPage)).Methods("GET")
	pub.Handle("/reset/{code}", s.handle(s.resetPassword)).Methods("POST")
	pub.Handle("/healthz", http.HandlerFunc(s.healthz)).Methods("GET", "HEAD")
	pub.PathPrefix("/static/").Handler(s.static()).Methods("GET", "HEAD")
	// An archived item's files: the link carries its own proof of access
	// (web/archive.go), as the sandboxed pages' requests carry no cookie.
	pub.PathPrefix("/archive/view/{item:[0-9a-f]{32}}/{token:[^/]+}/").Handler(s.handle(s.archiveView)).Methods("GET", "HEAD")
	pub.PathPrefix("/archive/pview/{id:[0-9]+}/{token:[^/]+}/").Handler(s.handle(s.proposalView)).Methods("GET", "HEAD")

	mem := r.NewRoute().Subrouter()
	mem.Use(s.members)
	mem.Handle("/logout", s.handle(s.logout)).Methods("POST")
	mem.Handle("/events", http.HandlerFunc(s.events)).Methods("GET")
	mem.Handle("/rooms", s.handle(s.roomsPage)).Methods("GET")
	mem.Handle("/rooms", s.handle(s.createRoom)).Methods("POST")
	mem.Handle("/rooms/{room}", s.handle(s.roomPage)).Methods("GET")
	mem.Handle("/rooms/{room}", s.handle(s.postInRoom)).Methods("POST").Name("upload-room")
	mem.Handle("/messages", s.handle(s.conversationsPage)).Methods("GET")
	mem.Handle("/messages", s.handle(s.startConversation)).Methods("POST")
	mem.Handle("/messages/{with}", s.handle(s.conversationPage)).Methods("GET")
	mem.Handle("/messages/{with}", s.handle(s.sendDirect)).Methods("POST").Name("upload-direct")
	mem.Handle("/attachments/{id:[0-9]+}", s.handle(s.downloadAttachment)).Methods("GET")
	mem.Handle("/files", s.handle(s.filesPage)).Methods("GET")
	mem.Handle("/files/shared", s.handle(s.filesPage)).Methods("GET")
	mem.Handle("/files/folder/{id:[0-9]+}", s.handle(s.filesPage)).Methods("GET")
	mem.Handle("/files/received", s.handle(s.receivedPage)).Methods("GET")
	mem.PathPrefix(receivedPrefix+"{id:[0-9a-f]{32}}/").Handler(s.handle(s.receivedBrowse)).Methods("GET", "HEAD")
	mem.Handle("/files/upload", s.handle(s.uploadFile)).Methods("POST").Name("upload-file")
	mem.Handle("/files/folder", s.handle(s.makeFolder)).Methods("POST")
	mem.Handle("/files/{id:[0-9]+}", s.handle(s.downloadFile)).Methods("GET")
	mem.Handle("/files/{id:[0-9]+}/{action:rename|delete|share}", s.handle(s.fileAction)).Methods("POST")
	mem.Handle("/files/folder/{id:[0-9]+}/{action:rename|delete}", s.handle(s.folderAction)).Methods("POST")
	mem.Handle("/search", s.handle(s.searchPage)).Methods("GET")
	mem.Handle("/account", s.handle(s.accountPage)).Methods("GET")
	mem.Handle("/archive", s.handle(s.archivePage)).Methods("GET")
	mem.Handle("/archive/items/{item:[0-9a-f]{32}}", s.handle(s.archiveItemPage)).Methods("GET")
	mem.Handle("/archive/items/{item:[0-9a-f]{32}}/open", s.handle(s.archiveOpen)).Methods("GET")
	mem.Handle("/archive/proposals", s.handle(s.proposalsPage)).Methods("GET")
	mem.Handle("/archive/proposals", s.handle(s.propose)).Methods("POST").Name("upload-archive")
	mem.Handle("/archive/proposals/{id:[0-9]+}", s.handle(s.proposalPage)).Methods("GET")
	mem.Handle("/archive/proposals/{id:[0-9]+}/open", s.handle(s.proposalOpen)).Methods("GET")
	mem.Handle("/archive/proposals/{id:[0-9]+}/{action:endorse|adopt|withdraw}", s.handle(s.proposalAction)).Methods("POST")
	mem.Handle("/archive/history", s.handle(s.archiveHistoryPage)).Methods("GET")
	mem.Handle("/map", s.handle(s.mapPage)).Methods("GET")
	mem.Handle("/map/{id}", s.handle(s.communityPage)).Methods("GET")
	mem.Handle("/account/{action:display|password|logout-all}", s.handle(s.accountAction)).Methods("POST")

	adm := r.NewRoute().Subrouter()
	adm.Use(s.admins)
	adm.Handle("/admin", s.handle(s.adminPage)).Methods("GET")
	adm.Handle("/admin/invites", s.handle(s.createInvite)).Methods("POST")
	adm.Handle("/admin/invites/revoke", s.handle(s.revokeInvite)).Methods("POST")
	adm.Handle("/admin/users/{user}/{action:activate|deactivate|admin|member|reset}", s.handle(s.userAction)).Methods("POST")
	adm.Handle("/admin/peers", s.handle(s.peersPage)).Methods("GET")
	adm.Handle("/admin/peers", s.handle(s.addPeer)).Methods("POST")
	adm.Handle("/admin/health", s.handle(s.healthPage)).Methods("GET")
	adm.Handle("/admin/health.json", s.handle(s.healthJSON)).Methods("GET")
	adm.Handle("/admin/network/location", s.handle(s.setLocation)).Methods("POST")
	adm.Handle("/admin/network/{id}/approve", s.handle(s.approveCommunity)).Methods("POST")
	adm.Handle("/admin/card.png", s.handle(s.cardQR)).Methods("GET")
	adm.Handle("/admin/rooms/{room}", s.handle(s.roomSettings)).Methods("POST")
	adm.Handle("/archive/settings", s.handle(s.archiveSettings)).Methods("POST")

	s.router = r
	return s.outer(r)
}
