package node

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// File errors.
var (
	// ErrNoFile means no file or folder has that number in that space.
	ErrNoFile = errors.New("node: no such file or folder")
	// ErrFileExists means the folder holds something of that name already.
	ErrFileExists = errors.New("node: a file or folder of that name exists here already")
	// ErrQuota means the upload would take a user over their quota.
	ErrQuota = errors.New("node: storage quota exceeded")
)

// SizeError reports a file over the size limit of an upload. Nothing of
// it was kept.
type SizeError struct{ Limit int64 }

func (e *SizeError) Error() string {
	return fmt.Sprintf("node: file larger than the limit of %d bytes", e.Limit)
}

// MaxFileName bounds a file or folder name, in bytes.
const MaxFileName = 255

// filesDir holds file bodies by SHA-256: files/<2 hex>/<64 hex>, and
// files/tmp/ for uploads being written.
const filesDir = "files"

// StagedBlob is a file body written to disk and hashed, not yet part of
// the store: [Node.AddFile] and [Node.Post] take it in, [StagedBlob.Discard]
// drops it.
type StagedBlob struct {
	Hash string // SHA-256, hex
	Size int64
	Head []byte // the first 512 bytes, to tell its type
	tmp  string
}

// StageBlob writes r to a temporary file while hashing it, and syncs it.
// More than limit bytes (if limit > 0) yield a *SizeError.
func (n *Node) StageBlob(r io.Reader, limit int64) (*StagedBlob, error) {
	dir := filepath.Join(n.dir, filesDir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: files: %w", err)
	}
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("node: files: %w", err)
	}
	fail := func(err error) (*StagedBlob, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	h := sha256.New()
	head := &headWriter{max: 512}
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	size, err := io.Copy(io.MultiWriter(f, h, head), src)
	if err != nil {
		return fail(err)
	}
	if limit > 0 && size > limit {
		return fail(&SizeError{Limit: limit})
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("node: files: %w", err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("node: files: %w", err))
	}
	return &StagedBlob{Hash: hex.EncodeToString(h.Sum(nil)), Size: size, Head: head.b, tmp: f.Name()}, nil
}

// Discard removes a staged body that was not taken in. It is safe to call
// after the body was taken in.
func (b *StagedBlob) Discard() {
	if b != nil && b.tmp != "" {
		os.Remove(b.tmp)
	}
}

type headWriter struct {
	b   []byte
	max int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if k := w.max - len(w.b); k > 0 {
		w.b = append(w.b, p[:min(k, len(p))]...)
	}
	return len(p), nil
}

// commitBlob moves a staged body to its place and records it, inside a
// write transaction. A body already stored is not written twice. The
// rename comes first: a crash then leaves at worst an unrecorded body.
func (n *Node) commitBlob(ctx context.Context, tx *sql.Tx, b *StagedBlob) error {
	dst := n.blobPath(b.Hash)
	if _, err := os.Stat(dst); err == nil {
		os.Remove(b.tmp)
	} else {
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("node: files: %w", err)
		}
		if err := os.Rename(b.tmp, dst); err != nil {
			return fmt.Errorf("node: files: %w", err)
		}
		if err := syncDir(filepath.Dir(dst)); err != nil {
			return err
		}
	}
	b.tmp = ""
	_, err := tx.ExecContext(ctx, `INSERT INTO blobs (hash, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		b.Hash, b.Size, n.now().UnixMilli())
	return err
}

func (n *Node) blobPath(hash string) string {
	return filepath.Join(n.dir, filesDir, hash[:2], hash)
}

// OpenBlob opens a stored file body by its hash, through an os.Root of
// the files folder so that no name can reach outside it.
func (n *Node) OpenBlob(hash string) (*os.File, error) {
	if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%w: bad hash %q", ErrNoFile, hash)
	}
	root, err := os.OpenRoot(filepath.Join(n.dir, filesDir))
	if err != nil {
		return nil, fmt.Errorf("node: files: %w", err)
	}
	defer root.Close()
	return root.Open(path.Join(hash[:2], hash))
}

// NewFile is a file to store: a staged body, or the body of a file already
// stored (Hash), under a name.
type NewFile struct {
	Name string
	Type string // its media type, as the uploader's side told it
	Blob *StagedBlob
	Hash string // instead of Blob: a body already stored
}

// attach stores the attachments of message rowid.
func (n *Node) attach(ctx context.Context, tx *sql.Tx, rowid int64, user string, fs []NewFile, quota int64) error {
	var added int64
	for _, f := range fs {
		if f.Blob != nil {
			added += f.Blob.Size
		}
	}
	if err := n.checkQuota(ctx, tx, user, added, quota); err != nil {
		return err
	}
	for _, f := range fs {
		hash, size, err := n.takeBody(ctx, tx, f)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO attachments (message, name, hash, size, type) VALUES (?, ?, ?, ?, ?)`,
			rowid, CleanFileName(f.Name), hash, size, cleanType(f.Type)); err != nil {
			return err
		}
	}
	return nil
}

// takeBody commits a staged body, or checks that a stored one exists.
func (n *Node) takeBody(ctx context.Context, tx *sql.Tx, f NewFile) (string, int64, error) {
	if f.Blob != nil {
		return f.Blob.Hash, f.Blob.Size, n.commitBlob(ctx, tx, f.Blob)
	}
	var size int64
	err := tx.QueryRowContext(ctx, `SELECT size FROM blobs WHERE hash = ?`, f.Hash).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("%w: body %s", ErrNoFile, f.Hash)
	}
	return f.Hash, size, err
}

func (n *Node) checkQuota(ctx context.Context, q querier, user string, added, quota int64) error {
	if quota <= 0 || added == 0 {
		return nil
	}
	used, err := n.usage(ctx, q, user)
	if err != nil {
		return err
	}
	if used+added > quota {
		return fmt.Errorf("%w: %d of %d bytes used, %d more asked", ErrQuota, used, quota, added)
	}
	return nil
}

// Usage returns the bytes a user stores here: the files they uploaded and
// the attachments they sent that are not also their files.
func (n *Node) Usage(ctx context.Context, user string) (int64, error) {
	return n.usage(ctx, n.db, user)
}

func (n *Node) usage(ctx context.Context, q querier, user string) (int64, error) {
	self := n.ID()
	var used int64
	err := q.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT SUM(size) FROM files WHERE uploaded_by = ?1), 0) +
		COALESCE((SELECT SUM(a.size) FROM attachments a JOIN messages m ON m.id = a.message
			WHERE m.origin = ?2 AND m.from_user = ?1
			AND a.hash NOT IN (SELECT hash FROM files WHERE uploaded_by = ?1)), 0)`, user, self[:]).Scan(&used)
	return used, err
}

// Folder is a folder of a user's own storage, or of the community's
// shared space (Owner "").
type Folder struct {
	ID      int64
	Owner   string
	Parent  int64 // 0 at the top of the space
	Name    string
	Created time.Time
}

// File is a stored file.
type File struct {
	ID         int64
	Owner      string // "" for the shared space
	Folder     int64  // 0 at the top of the space
	Name       string
	Hash       string
	Size       int64
	Type       string
	UploadedBy string
	Created    time.Time
}

// Folder returns the folder with that number.
func (n *Node) Folder(ctx context.Context, id int64) (*Folder, error) {
	var f Folder
	var owner sql.NullString
	var parent sql.NullInt64
	var created int64
	err := n.db.QueryRowContext(ctx, `SELECT id, owner, parent, name, created_at FROM folders WHERE id = ?`, id).
		Scan(&f.ID, &owner, &parent, &f.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: folder %d", ErrNoFile, id)
	}
	if err != nil {
		return nil, err
	}
	f.Owner, f.Parent, f.Created = owner.String, parent.Int64, timeMilli(created)
	return &f, nil
}

// FolderPath returns a folder and its ancestors, the top first.
func (n *Node) FolderPath(ctx context.Context, id int64) ([]Folder, error) {
	var out []Folder
	for id != 0 && len(out) < 64 {
		f, err := n.Folder(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append([]Folder{*f}, out...)
		id = f.Parent
	}
	return out, nil
}

// ListFolder lists a folder of a space (owner "" for the shared space;
// folder 0 for its top), folders first, by name.
func (n *Node) ListFolder(ctx context.Context, owner string, folder int64) ([]Folder, []File, error) {
	if folder != 0 {
		f, err := n.Folder(ctx, folder)
		if err != nil {
			return nil, nil, err
		}
		if f.Owner != owner {
			return nil, nil, fmt.Errorf("%w: folder %d", ErrNoFile, folder)
		}
	}
	rows, err := n.db.QueryContext(ctx, `SELECT id, name, created_at FROM folders
		WHERE COALESCE(owner, '') = ? AND COALESCE(parent, 0) = ? ORDER BY name COLLATE NOCASE`, owner, folder)
	if err != nil {
		return nil, nil, err
	}
	var folders []Folder
	for rows.Next() {
		f := Folder{Owner: owner, Parent: folder}
		var created int64
		if err := rows.Scan(&f.ID, &f.Name, &created); err != nil {
			rows.Close()
			return nil, nil, err
		}
		f.Created = timeMilli(created)
		folders = append(folders, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	files, err := n.queryFiles(ctx, `COALESCE(owner, '') = ? AND COALESCE(folder, 0) = ? ORDER BY name COLLATE NOCASE`, owner, folder)
	return folders, files, err
}

// File returns the file with that number.
func (n *Node) File(ctx context.Context, id int64) (*File, error) {
	fs, err := n.queryFiles(ctx, `id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%w: file %d", ErrNoFile, id)
	}
	return &fs[0], nil
}

func (n *Node) queryFiles(ctx context.Context, cond string, args ...any) ([]File, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT id, COALESCE(owner, ''), COALESCE(folder, 0), name, hash, size, type, uploaded_by, created_at
		FROM files WHERE `+cond, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []File
	for rows.Next() {
		var f File
		var created int64
		if err := rows.Scan(&f.ID, &f.Owner, &f.Folder, &f.Name, &f.Hash, &f.Size, &f.Type, &f.UploadedBy, &created); err != nil {
			return nil, err
		}
		f.Created = timeMilli(created)
		out = append(out, f)
	}
	return out, rows.Err()
}

// MakeFolder creates a folder in a space.
func (n *Node) MakeFolder(ctx context.Context, owner string, parent int64, name string) (int64, error) {
	name = CleanFileName(name)
	var id int64
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		if err := checkFolder(ctx, tx, owner, parent); err != nil {
			return err
		}
		if taken, err := nameTaken(ctx, tx, owner, parent, name); err != nil || taken {
			return errors.Join(err, fileExists(taken, name))
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO folders (owner, parent, name, created_at) VALUES (?, ?, ?, ?)`,
			nullString(owner), nullID(parent), name, n.now().UnixMilli())
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	return id, err
}

// AddFile stores a file in a folder of a space, for user by, within quota
// bytes (0: no bound). A name taken in the folder gets a number: "a (2).txt".
func (n *Node) AddFile(ctx context.Context, owner string, folder int64, f NewFile, by string, quota int64) (*File, error) {
	name := CleanFileName(f.Name)
	var id int64
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		if err := checkFolder(ctx, tx, owner, folder); err != nil {
			return err
		}
		var added int64
		if f.Blob != nil {
			added = f.Blob.Size
		}
		if err := n.checkQuota(ctx, tx, by, added, quota); err != nil {
			return err
		}
		free, err := freeName(ctx, tx, owner, folder, name)
		if err != nil {
			return err
		}
		hash, size, err := n.takeBody(ctx, tx, f)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO files (owner, folder, name, hash, size, type, uploaded_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, nullString(owner), nullID(folder), free, hash, size, cleanType(f.Type), by, n.now().UnixMilli())
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return nil, err
	}
	return n.File(ctx, id)
}

// RenameFile renames a file in its folder.
func (n *Node) RenameFile(ctx context.Context, id int64, name string) error {
	return n.rename(ctx, "files", id, name)
}

// RenameFolder renames a folder.
func (n *Node) RenameFolder(ctx context.Context, id int64, name string) error {
	return n.rename(ctx, "folders", id, name)
}

func (n *Node) rename(ctx context.Context, table string, id int64, name string) error {
	name = CleanFileName(name)
	parentCol := map[string]string{"files": "folder", "folders": "parent"}[table]
	return n.withTx(ctx, func(tx *sql.Tx) error {
		var owner string
		var parent int64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(owner, ''), COALESCE(`+parentCol+`, 0) FROM `+table+` WHERE id = ?`, id).Scan(&owner, &parent)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrNoFile, id)
		}
		if err != nil {
			return err
		}
		if taken, err := nameTaken(ctx, tx, owner, parent, name); err != nil || taken {
			return errors.Join(err, fileExists(taken, name))
		}
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET name = ? WHERE id = ?`, name, id)
		return err
	})
}

// DeleteFile deletes a file; its body goes when nothing else uses it.
func (n *Node) DeleteFile(ctx context.Context, id int64) error {
	return n.delete(ctx, "files", id)
}

// DeleteFolder deletes a folder and everything in it.
func (n *Node) DeleteFolder(ctx context.Context, id int64) error {
	return n.delete(ctx, "folders", id)
}

func (n *Node) delete(ctx context.Context, table string, id int64) error {
	var gone []string
	err := n.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("%w: %d", ErrNoFile, id)
		}
		gone, err = dropUnusedBlobs(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	for _, h := range gone {
		if err := os.Remove(n.blobPath(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("removing a file body", "hash", h, "err", err)
		}
	}
	return nil
}

// dropUnusedBlobs forgets the bodies no file or attachment uses and
// returns their hashes, for removal after the commit.
func dropUnusedBlobs(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM files)
		AND hash NOT IN (SELECT hash FROM attachments) RETURNING hash`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var gone []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		gone = append(gone, h)
	}
	return gone, rows.Err()
}

// Attachment returns the attachment with that number, if user may see the
// message it came with.
func (n *Node) Attachment(ctx context.Context, user string, id int64) (*Attachment, error) {
	var a Attachment
	err := n.db.QueryRowContext(ctx, `SELECT id, message, name, hash, size, type FROM attachments WHERE id = ?`, id).
		Scan(&a.ID, &a.Message, &a.Name, &a.Hash, &a.Size, &a.Type)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: attachment %d", ErrNoFile, id)
	}
	if err != nil {
		return nil, err
	}
	if _, _, err := n.Message(ctx, user, a.Message); errors.Is(err, ErrNoMessage) {
		return nil, fmt.Errorf("%w: attachment %d", ErrNoFile, id)
	} else if err != nil {
		return nil, err
	}
	return &a, nil
}

// ShareFile posts a stored file into a room as an attachment, with an
// optional note.
func (n *Node) ShareFile(ctx context.Context, user string, fileID int64, room, note string) (int64, error) {
	f, err := n.File(ctx, fileID)
	if err != nil {
		return 0, err
	}
	id, _, err := n.Post(ctx, Draft{From: user, Room: room, Body: note,
		Attachments: []NewFile{{Name: f.Name, Type: f.Type, Hash: f.Hash}}})
	return id, err
}

func checkFolder(ctx context.Context, tx *sql.Tx, owner string, folder int64) error {
	if folder == 0 {
		return nil
	}
	var o string
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(owner, '') FROM folders WHERE id = ?`, folder).Scan(&o)
	if errors.Is(err, sql.ErrNoRows) || err == nil && o != owner {
		return fmt.Errorf("%w: folder %d", ErrNoFile, folder)
	}
	return err
}

func nameTaken(ctx context.Context, tx *sql.Tx, owner string, parent int64, name string) (bool, error) {
	var k int
	err := tx.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM folders WHERE COALESCE(owner, '') = ?1 AND COALESCE(parent, 0) = ?2 AND name = ?3) +
		(SELECT COUNT(*) FROM files WHERE COALESCE(owner, '') = ?1 AND COALESCE(folder, 0) = ?2 AND name = ?3)`,
		owner, parent, name).Scan(&k)
	return k > 0, err
}

func fileExists(taken bool, name string) error {
	if !taken {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrFileExists, name)
}

// freeName returns name, or name with a number before its extension when
// the folder holds that name already.
func freeName(ctx context.Context, tx *sql.Tx, owner string, folder int64, name string) (string, error) {
	base, ext := splitExt(name)
	try := name
	for i := 2; i < 1000; i++ {
		taken, err := nameTaken(ctx, tx, owner, folder, try)
		if err != nil || !taken {
			return try, err
		}
		suffix := fmt.Sprintf(" (%d)", i)
		try = truncateUTF8(base, MaxFileName-len(suffix)-len(ext)) + suffix + ext
	}
	return "", fmt.Errorf("%w: %q", ErrFileExists, name)
}

// CleanFileName makes any text a safe file or folder name for display and
// download: valid UTF-8 without control characters (NUL included) or
// slashes, trimmed, at most MaxFileName bytes with the extension kept, and
// never empty, "." or "..". Names are only labels here (bodies are stored
// by hash), but they travel in Content-Disposition headers and into
// other people's file systems.
func CleanFileName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\':
			return '_'
		case unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Bidi_Control, r):
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	if s == "" || s == "." || s == ".." {
		return "file"
	}
	if len(s) <= MaxFileName {
		return s
	}
	base, ext := splitExt(s)
	return truncateUTF8(base, MaxFileName-len(ext)) + ext
}

// splitExt splits a name into its base and an extension of up to 16
// letters and digits after a dot ("report", ".pdf"); a name without
// such an extension is all base.
func splitExt(name string) (string, string) {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if len(ext) < 2 || len(ext) > 16 || base == "" || strings.HasSuffix(base, ".") ||
		strings.IndexFunc(ext[1:], func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) >= 0 {
		return name, ""
	}
	return base, ext
}

// CleanLabel makes text a one-line label of at most max bytes: valid
// UTF-8, without control characters, trimmed.
func CleanLabel(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	return strings.TrimSpace(truncateUTF8(strings.TrimSpace(s), max))
}

// truncateUTF8 cuts s to at most max bytes without splitting a character.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

func cleanType(t string) string {
	t = CleanLabel(t, 100)
	if t == "" {
		return "application/octet-stream"
	}
	return t
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
