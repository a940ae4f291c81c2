package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"filippo.io/age"

	"ferry/bundle"
)

func ExampleNewWriter() {
	// The source node signs with its ed25519 key; the destination node
	// decrypts with its age identity.
	_, signer, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	dest, err := age.GenerateX25519Identity()
	if err != nil {
		log.Fatal(err)
	}

	// The writer reserves room for the header at the start of the file and
	// fills it in on Close, so it needs a file it can seek in.
	f, err := os.CreateTemp("", "example-*.ferry")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	h := bundle.Header{
		Kind:    bundle.KindMessages,
		Source:  bundle.NodeID(signer.Public().(ed25519.PublicKey)),
		Dest:    bundle.Destination{Type: bundle.DestEveryone},
		Seq:     1,
		Created: time.Now(),
		Expires: time.Now().Add(7 * 24 * time.Hour),
	}
	w, err := bundle.NewWriter(f, h, signer, dest.Recipient())
	if err != nil {
		log.Fatal(err)
	}
	sent := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC) // when ada sent it
	m := bundle.Message{Seq: 1, Created: sent, From: "ada", To: "grace", Body: "The bridge is out."}
	body, err := m.AppendBinary(nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WriteRecord(bundle.RecordMessage, body); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d record, %d bytes of content\n", w.Records(), w.ContentSize())
	fmt.Printf("kind %s, signed content size %d\n", w.Header().Kind, w.Header().ContentSize)
	// Output:
	// 1 record, 39 bytes of content
	// kind messages, signed content size 39
}

func ExampleNewReader() {
	// A bundle for dest, made as in the NewWriter example.
	data, dest := exampleBundle("The bridge is out.", "Take the north road.")

	// NewReader checks the signature; the payload is checked as it is read.
	r, err := bundle.NewReader(bytes.NewReader(data), bundle.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("kind:", r.Header().Kind)

	records, err := r.Open(dest)
	if err != nil {
		log.Fatal(err)
	}
	defer records.Close()
	var msgs []*bundle.Message
	for {
		rec, err := records.Next()
		if err == io.EOF {
			break // the whole payload verified
		}
		if err != nil {
			log.Fatal(err) // refuse the whole bundle, and keep nothing of it
		}
		if rec.Type != bundle.RecordMessage {
			continue // Next skips the body of a record not read
		}
		body, err := records.Bytes()
		if err != nil {
			log.Fatal(err)
		}
		m, err := bundle.ParseMessage(body)
		if err != nil {
			log.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	// Only now, at io.EOF, is it safe to act on the records.
	for _, m := range msgs {
		fmt.Printf("%s → %s: %s\n", m.From, m.To, m.Body)
	}
	// Output:
	// kind: messages
	// ada → grace: The bridge is out.
	// ada → grace: Take the north road.
}

func ExampleReader_Payload() {
	data, _ := exampleBundle("The bridge is out.")

	// A carrier cannot decrypt the payload, but it checks the signature and
	// the payload's hash before it stores or passes on a bundle.
	r, err := bundle.NewReader(bytes.NewReader(data), bundle.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}
	var stored bytes.Buffer
	stored.Write(r.Prefix())
	if _, err := io.Copy(&stored, r.Payload()); err != nil {
		log.Fatal(err) // damaged: drop it
	}
	fmt.Println("stored intact:", bytes.Equal(stored.Bytes(), data))

	// A bundle with a damaged payload is refused, although its header
	// still verifies.
	data[len(data)-1] ^= 1
	r, err = bundle.NewReader(bytes.NewReader(data), bundle.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r.Payload())
	fmt.Println(err)
	// Output:
	// stored intact: true
	// bundle: payload does not match its signed hash
}

// exampleBundle returns a bundle of messages from ada to grace, and the
// identity that opens it.
func exampleBundle(bodies ...string) ([]byte, *age.X25519Identity) {
	_, signer, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	dest, err := age.GenerateX25519Identity()
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.CreateTemp("", "example-*.ferry")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := bundle.Header{
		Kind:    bundle.KindMessages,
		Source:  bundle.NodeID(signer.Public().(ed25519.PublicKey)),
		Dest:    bundle.Destination{Type: bundle.DestEveryone},
		Seq:     1,
		Created: time.Now(),
	}
	w, err := bundle.NewWriter(f, h, signer, dest.Recipient())
	if err != nil {
		log.Fatal(err)
	}
	for i, body := range bodies {
		m := bundle.Message{Seq: uint64(i + 1), Created: time.Now(), From: "ada", To: "grace", Body: body}
		b, err := m.AppendBinary(nil)
		if err != nil {
			log.Fatal(err)
		}
		if err := w.WriteRecord(bundle.RecordMessage, b); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		log.Fatal(err)
	}
	return data, dest
}
