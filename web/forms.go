package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"ferry/node"
)

// form is a submitted form: its fields, and at most one uploaded file,
// staged on disk.
type form struct {
	values map[string]string
	file   *node.NewFile
}

func (f *form) discard() {
	if f != nil && f.file != nil {
		f.file.Blob.Discard()
	}
}

var errOneFile = &httpError{status: http.StatusBadRequest, msg: "Send one file at a time."}

// readForm reads a form. A multipart form is streamed: the csrf middleware
// read its token, and here the file goes straight to disk while it is
// hashed, bounded by the upload limit.
func (s *Server) readForm(r *http.Request, fileField string) (*form, error) {
	f := &form{values: map[string]string{}}
	parts := stateOf(r).parts
	if parts == nil {
		if err := r.ParseForm(); err != nil {
			if maxBytesError(err) {
				return nil, err
			}
			return nil, &httpError{status: http.StatusBadRequest, msg: "Malformed form."}
		}
		for k := range r.PostForm {
			f.values[k] = r.PostForm.Get(k)
		}
		return f, nil
	}
	for {
		p, err := parts.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			f.discard()
			if maxBytesError(err) {
				return nil, err
			}
			return nil, &httpError{status: http.StatusBadRequest, msg: "Malformed form."}
		}
		name, filename := partNames(p.Header.Get("Content-Disposition"))
		switch {
		case name == fileField && filename != "":
			if f.file != nil {
				f.discard()
				return nil, errOneFile
			}
			blob, err := s.n.StageBlob(p, s.opts.MaxUpload)
			if err != nil {
				return nil, err
			}
			f.file = &node.NewFile{Name: filename, Type: sniff(blob.Head, filename), Blob: blob}
		default:
			b, err := io.ReadAll(io.LimitReader(p, maxFormBody+1))
			if err != nil || len(b) > maxFormBody {
				f.discard()
				return nil, errors.Join(err, &httpError{status: http.StatusRequestEntityTooLarge, msg: "A field of this form is too long."})
			}
			if name != fileField {
				f.values[name] = string(b)
			}
		}
	}
}

// partNames returns a part's field name and file name as the browser sent
// them: unlike Part.FileName, the file name keeps any directory part, so
// that the store's own cleaning decides what is kept.
func partNames(cd string) (string, string) {
	// A control character (a NUL in a file name) would fail the whole
	// header: drop them first.
	cd = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, cd)
	_, params, err := mime.ParseMediaType(cd)
	if err != nil {
		return "", ""
	}
	return params["name"], params["filename"]
}

// sniff tells a file's media type from its first bytes, or its name.
func sniff(head []byte, name string) string {
	t := http.DetectContentType(head)
	if t == "application/octet-stream" || strings.HasPrefix(t, "text/plain") {
		if bt := mime.TypeByExtension(strings.ToLower(path.Ext(name))); bt != "" {
			return bt
		}
	}
	return t
}

// inlineTypes are the only media types a file is served as; anything else
// is application/octet-stream. Files are always downloads
// (Content-Disposition: attachment) with nosniff and a sandboxing CSP, so
// that an uploaded HTML or SVG file can never run in this site's origin.
var inlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"application/pdf": true, "text/plain; charset=utf-8": true, "audio/mpeg": true, "audio/ogg": true,
	"video/mp4": true, "application/zip": true,
}

// serveBody sends a stored file as a download.
func (s *Server) serveBody(w http.ResponseWriter, r *http.Request, hash, name, typ string) error {
	f, err := s.n.OpenBlob(hash)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+hash+`"`)
	serveDownload(w, r, f, fi.ModTime(), name, typ)
	return nil
}

// serveDownload sends content as a download named name: never shown in
// this site's origin, whatever it holds. typ is kept only if it is one of
// inlineTypes.
func serveDownload(w http.ResponseWriter, r *http.Request, content io.ReadSeeker, mod time.Time, name, typ string) {
	if !inlineTypes[typ] {
		typ = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", typ)
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if cd == "" {
		cd = "attachment"
	}
	h.Set("Content-Disposition", cd)
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, "", mod, content)
}
