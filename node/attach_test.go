package node_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/bundle"
	"ferry/node"
)

// fileBody is a binary file body: every byte value, then text.
func fileBody() []byte {
	b := make([]byte, 0, 300)
	for i := range 256 {
		b = append(b, byte(i))
	}
	return append(b, "<script>alert(1)</script>"...)
}

func stage(t *testing.T, n *node.Node, body []byte) *node.StagedBlob {
	t.Helper()
	b, err := n.StageBlob(bytes.NewReader(body), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blobs counts the file bodies in a node's files folder.
func blobs(t *testing.T, n *node.Node) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(n.Dir(), "files", "??", "*"))
	return len(m)
}

func readBlob(t *testing.T, n *node.Node, hash string) []byte {
	t.Helper()
	f, err := n.OpenBlob(hash)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttachmentsTravel sends a direct message with a file to a user of
// another community, and a post with a file into a shared room: the files
// arrive byte-identical, stored once, visible only to the conversation.
func TestAttachmentsTravel(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	if err := river.AddUser(ctx, "eve"); err != nil {
		t.Fatal(err)
	}
	body := fileBody()
	to := node.Address{User: "user", Node: "river"}
	for _, name := range []string{"../../map.bin", "copy.bin"} {
		if _, _, err := north.Post(ctx, node.Draft{From: "user", To: to, Body: "the map",
			Attachments: []node.NewFile{{Name: name, Type: "application/octet-stream", Blob: stage(t, north, body)}}}); err != nil {
			t.Fatal(err)
		}
	}
	sharedRoom(t, north, river, "garden", "Garden")
	photo := []byte("not really a photo")
	if _, _, err := north.Post(ctx, node.Draft{From: "user", Room: "garden",
		Attachments: []node.NewFile{{Name: "tomatoes.jpg", Type: "image/jpeg", Blob: stage(t, north, photo)}}}); err != nil {
		t.Fatal(err)
	}

	rs := carry(t, north, river)
	if len(rs) != 1 || rs[0].Status != node.StatusApplied || rs[0].Messages != 3 {
		t.Fatalf("ingest: %+v", rs)
	}
	es, err := river.DirectMessages(ctx, "user", node.Address{User: "user", Node: "north"}, node.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("river has %d direct messages, want 2", len(es))
	}
	wantNames := []string{".._.._map.bin", "copy.bin"}
	for i, e := range es {
		if len(e.Files) != 1 {
			t.Fatalf("message %d arrived with %d files", i, len(e.Files))
		}
		f := e.Files[0]
		if f.Name != wantNames[i] || f.Size != int64(len(body)) || f.Type != "application/octet-stream" {
			t.Errorf("attachment %d: %+v", i, f)
		}
		if f.Hash != sha(body) || !bytes.Equal(readBlob(t, river, f.Hash), body) {
			t.Errorf("attachment %d is not byte-identical", i)
		}
		if _, err := river.Attachment(ctx, "user", f.ID); err != nil {
			t.Errorf("the recipient cannot open attachment %d: %v", i, err)
		}
		if _, err := river.Attachment(ctx, "eve", f.ID); !errors.Is(err, node.ErrNoFile) {
			t.Errorf("another user opens attachment %d: %v", i, err)
		}
	}
	room, err := river.RoomMessages(ctx, "garden", node.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(room) != 1 || len(room[0].Files) != 1 || !bytes.Equal(readBlob(t, river, room[0].Files[0].Hash), photo) {
		t.Fatalf("river's garden: %+v", room)
	}
	if _, err := river.Attachment(ctx, "eve", room[0].Files[0].ID); err != nil {
		t.Errorf("a member cannot open a room's attachment: %v", err)
	}
	if got := blobs(t, river); got != 2 {
		t.Errorf("river stores %d bodies, want 2 (one per content)", got)
	}

	// The delivery comes back as usual.
	carry(t, river, north)
	if s := state(t, north, "user")["the map"]; s != node.StateDelivered {
		t.Errorf("north sees the map %s", s)
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestAttachmentLies sends bundles whose attachment does not match its
// hash, or claims a body the receiver already has, or names a message not
// in the bundle: the first two are refused with nothing stored, the last
// is skipped.
func TestAttachmentLies(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	north, river := newNode(t, "north", c), newNode(t, "river", c)
	link(t, north, river)
	ctx := t.Context()
	// A private file of a river user, whose hash north has learnt.
	secret := []byte("river's private file")
	if _, err := river.AddFile(ctx, "user", 0, node.NewFile{Name: "secret.txt", Blob: stage(t, river, secret)}, "user", 0); err != nil {
		t.Fatal(err)
	}

	send := func(seq uint64, attachTo uint64, claimed, real []byte) (node.IngestResult, error) {
		t.Helper()
		id, _, err := north.SealRecords(ctx, river.ID(), bundle.KindMessages, node.PriorityMessages, 0, func(w *bundle.Writer) error {
			m := bundle.Message{Seq: seq, Created: c.t, From: "user", To: "user", Body: "see attached"}
			b, err := m.AppendBinary(nil)
			if err != nil {
				return err
			}
			if err := w.WriteRecord(bundle.RecordMessage, b); err != nil {
				return err
			}
			h := bundle.AttachmentHeader{Seq: attachTo, Size: uint64(len(real)), Hash: sha256.Sum256(claimed), Name: "x.txt"}
			hb, err := h.AppendBinary(nil)
			if err != nil {
				return err
			}
			return w.WriteRecord(bundle.RecordAttachment, append(hb, real...))
		})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := north.Export(ctx, river.ID(), dir); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, id.String()+".bundle")
		fh, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		return river.Ingest(ctx, fh)
	}
	messages := func() int {
		es, err := river.DirectMessages(ctx, "user", node.Address{User: "user", Node: "north"}, node.Page{})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	for _, c := range []struct {
		name          string
		claimed, real []byte
	}{
		{"wrong bytes", []byte("the bytes claimed"), []byte("other bytes")},
		{"a body river has", secret, []byte("junk of the same len")},
	} {
		_, err := send(1, 1, c.claimed, c.real)
		var re *node.RefusedError
		if !errors.As(err, &re) {
			t.Errorf("%s: ingest %v, want it refused", c.name, err)
		}
		if n := messages(); n != 0 {
			t.Errorf("%s: %d messages kept from a refused bundle", c.name, n)
		}
		if n := blobs(t, river); n != 1 {
			t.Errorf("%s: river has %d bodies, want only its own", c.name, n)
		}
	}

	// A file for a message that is not in the bundle is skipped.
	r, err := send(2, 1, []byte("fine"), []byte("fine"))
	if err != nil || r.Status != node.StatusApplied {
		t.Fatalf("ingest: %+v %v", r, err)
	}
	es, err := river.DirectMessages(ctx, "user", node.Address{User: "user", Node: "north"}, node.Page{})
	if err != nil || len(es) != 1 || len(es[0].Files) != 0 {
		t.Fatalf("river: %+v %v", es, err)
	}
	if n := blobs(t, river); n != 1 {
		t.Errorf("river has %d bodies, want only its own", n)
	}
}

// sharedRoom makes a room on both nodes, shared between them.
func sharedRoom(t *testing.T, a, b *node.Node, name, title string) {
	t.Helper()
	for _, n := range [][2]*node.Node{{a, b}, {b, a}} {
		if _, err := n[0].CreateRoom(t.Context(), name, title, "", "user"); err != nil {
			t.Fatal(err)
		}
		if err := n[0].ShareRoom(t.Context(), name, n[1].Name()); err != nil {
			t.Fatal(err)
		}
	}
}
