package archive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"ferry/bundle"
)

// UnpackLimits bound what an uploaded .zip or .tar may unpack to.
type UnpackLimits struct {
	MaxEntries int   // files and folders
	MaxBytes   int64 // the files' bytes, declared and read
}

// DefaultUnpackLimits: a 20,000-page mirror fits five times over.
var DefaultUnpackLimits = UnpackLimits{MaxEntries: 100_000, MaxBytes: 1 << 30}

// ErrUnsafeArchive is wrapped by every refusal of an uploaded archive
// for what it holds (as opposed to a read or write error).
var ErrUnsafeArchive = errors.New("archive: refused")

// UnsafeError says which entry of an uploaded archive was refused, and
// why.
type UnsafeError struct {
	Entry  string // "" for the archive as a whole
	Reason string
}

func (e *UnsafeError) Error() string {
	if e.Entry == "" {
		return "archive: refused: " + e.Reason
	}
	return fmt.Sprintf("archive: refused: entry %q %s", e.Entry, e.Reason)
}

func (e *UnsafeError) Unwrap() error { return ErrUnsafeArchive }

// IsPackedName reports whether a file name is one Unpack takes.
func IsPackedName(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".zip") || strings.HasSuffix(n, ".tar") || strings.HasSuffix(n, ".tar.gz") || strings.HasSuffix(n, ".tgz")
}

// Unpack unpacks the archive file f, a .zip, .tar, .tar.gz or .tgz (by
// its name), into dst, which should be empty. Only folders and regular
// files are made, through dst (an [os.Root]), each file exclusively: an
// entry whose name would leave dst (.., an absolute path, a name not
// valid in an archive manifest), a symbolic or hard link, a device, more
// entries or bytes than lim allows (declared or read) refuse the whole
// archive with an *UnsafeError; the caller then removes dst. It returns
// the number of files made.
func Unpack(name string, f *os.File, dst *os.Root, lim UnpackLimits) (int, error) {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, ".zip"):
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return UnpackZip(f, fi.Size(), dst, lim)
	case strings.HasSuffix(n, ".tar"):
		return UnpackTar(f, dst, lim)
	case strings.HasSuffix(n, ".tar.gz"), strings.HasSuffix(n, ".tgz"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			return 0, &UnsafeError{Reason: "is not a gzip file: " + err.Error()}
		}
		return UnpackTar(zr, dst, lim)
	}
	return 0, &UnsafeError{Reason: "is not a .zip, .tar, .tar.gz or .tgz"}
}

// unpacker writes entries into the root, counting against the limits.
type unpacker struct {
	dst     *os.Root
	lim     UnpackLimits
	entries int
	bytes   int64
	files   int
}

// entryPath checks an entry's name and returns it cleaned of a leading
// "./" and a trailing "/".
func (u *unpacker) entryPath(name string) (string, error) {
	u.entries++
	if u.entries > u.lim.MaxEntries {
		return "", &UnsafeError{Reason: fmt.Sprintf("holds more than %d entries", u.lim.MaxEntries)}
	}
	p := strings.TrimSuffix(name, "/")
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	if p == "" || p == "." {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return "", &UnsafeError{Entry: name, Reason: "leaves the item's root"}
	}
	if err := bundle.ValidArchivePath(p); err != nil {
		return "", &UnsafeError{Entry: name, Reason: "has a name an archive cannot hold: " + err.Error()}
	}
	return p, nil
}

func (u *unpacker) dir(p string) error {
	if p == "." {
		return nil
	}
	if err := u.dst.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("archive: unpack %s: %w", p, err)
	}
	return nil
}

// file writes one regular file of declared size from r.
func (u *unpacker) file(name, p string, declared int64, r io.Reader) error {
	if declared < 0 || declared > u.lim.MaxBytes-u.bytes {
		return &UnsafeError{Entry: name, Reason: fmt.Sprintf("declares %d bytes: the archive's limit is %d in all", declared, u.lim.MaxBytes)}
	}
	if d := path.Dir(p); d != "." {
		if err := u.dir(d); err != nil {
			return err
		}
	}
	w, err := u.dst.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return &UnsafeError{Entry: name, Reason: "appears twice"}
	}
	if err != nil {
		return fmt.Errorf("archive: unpack %s: %w", p, err)
	}
	n, err := io.Copy(w, io.LimitReader(r, u.lim.MaxBytes-u.bytes+1))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	u.bytes += n
	if err != nil {
		return fmt.Errorf("archive: unpack %s: %w", p, err)
	}
	if u.bytes > u.lim.MaxBytes {
		return &UnsafeError{Entry: name, Reason: fmt.Sprintf("unpacks past the archive's limit of %d bytes", u.lim.MaxBytes)}
	}
	u.files++
	return nil
}

// UnpackZip unpacks a .zip of size bytes read from r; see [Unpack]. Its
// central directory is counted first, without allocating per entry, so
// a zip declaring millions of entries is refused before archive/zip
// reads them.
func UnpackZip(r io.ReaderAt, size int64, dst *os.Root, lim UnpackLimits) (int, error) {
	if err := CheckZipDirectory(r, size, lim.MaxEntries); err != nil {
		return 0, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return 0, &UnsafeError{Reason: "is not a readable zip: " + err.Error()}
	}
	u := &unpacker{dst: dst, lim: lim}
	var declared uint64
	for _, f := range zr.File {
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxBytes) {
			return 0, &UnsafeError{Entry: f.Name, Reason: fmt.Sprintf("brings the declared size past the limit of %d bytes", lim.MaxBytes)}
		}
	}
	for _, f := range zr.File {
		p, err := u.entryPath(f.Name)
		if err != nil {
			return u.files, err
		}
		mode := f.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return u.files, &UnsafeError{Entry: f.Name, Reason: "is a symbolic link"}
		case mode.IsDir():
			if err := u.dir(p); err != nil {
				return u.files, err
			}
			continue
		case !mode.IsRegular():
			return u.files, &UnsafeError{Entry: f.Name, Reason: "is not a regular file (" + mode.Type().String() + ")"}
		}
		if p == "." {
			return u.files, &UnsafeError{Entry: f.Name, Reason: "is a file without a name"}
		}
		rc, err := f.Open()
		if err != nil {
			return u.files, &UnsafeError{Entry: f.Name, Reason: "cannot be read: " + err.Error()}
		}
		err = u.file(f.Name, p, int64(min(f.UncompressedSize64, 1<<62)), rc)
		rc.Close()
		if err != nil {
			if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) {
				return u.files, &UnsafeError{Entry: f.Name, Reason: "is damaged: " + err.Error()}
			}
			return u.files, err
		}
	}
	return u.files, nil
}

// UnpackTar unpacks a tar stream; see [Unpack].
func UnpackTar(r io.Reader, dst *os.Root, lim UnpackLimits) (int, error) {
	tr := tar.NewReader(r)
	u := &unpacker{dst: dst, lim: lim}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return u.files, nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return u.files, &UnsafeError{Reason: "is not a readable tar: " + err.Error()}
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		p, err := u.entryPath(h.Name)
		if err != nil {
			return u.files, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := u.dir(p); err != nil {
				return u.files, err
			}
		case tar.TypeReg, tar.TypeRegA:
			if p == "." {
				return u.files, &UnsafeError{Entry: h.Name, Reason: "is a file without a name"}
			}
			if err := u.file(h.Name, p, h.Size, tr); err != nil {
				return u.files, err
			}
		case tar.TypeSymlink:
			return u.files, &UnsafeError{Entry: h.Name, Reason: "is a symbolic link"}
		case tar.TypeLink:
			return u.files, &UnsafeError{Entry: h.Name, Reason: "is a hard link"}
		default:
			return u.files, &UnsafeError{Entry: h.Name, Reason: fmt.Sprintf("is not a regular file (tar type %q)", h.Typeflag)}
		}
	}
}

// Zip record signatures and sizes (APPNOTE.TXT 4.3).
const (
	zipDirEndSig     = 0x06054b50
	zipDir64EndSig   = 0x06064b50
	zipDir64LocSig   = 0x07064b50
	zipDirHeaderSig  = 0x02014b50
	zipDirEndLen     = 22
	zipDir64LocLen   = 20
	zipDir64EndLen   = 56
	zipDirHeaderLen  = 46
	zipMaxCommentLen = 0xffff
)

// CheckZipDirectory refuses a zip whose end record declares more than
// max entries, or whose central directory holds more than max headers,
// reading the headers one at a time (constant memory).
func CheckZipDirectory(r io.ReaderAt, size int64, max int) error {
	tail := min(size, zipDirEndLen+zipMaxCommentLen)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && err != io.EOF {
		return fmt.Errorf("archive: read zip: %w", err)
	}
	end := -1
	for i := len(buf) - zipDirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) == zipDirEndSig {
			end = i
			break
		}
	}
	if end < 0 {
		return &UnsafeError{Reason: "is not a zip (no end of central directory)"}
	}
	endOff := size - tail + int64(end)
	e := buf[end:]
	records := uint64(binary.LittleEndian.Uint16(e[10:]))
	dirSize := uint64(binary.LittleEndian.Uint32(e[12:]))
	dirOff := uint64(binary.LittleEndian.Uint32(e[16:]))
	if records == 0xffff || dirSize == 0xffffffff || dirOff == 0xffffffff {
		// Zip64: the locator just before the end record names the zip64
		// end record.
		var loc [zipDir64LocLen]byte
		if endOff < zipDir64LocLen {
			return &UnsafeError{Reason: "is a damaged zip64 (no locator)"}
		}
		if _, err := r.ReadAt(loc[:], endOff-zipDir64LocLen); err != nil || binary.LittleEndian.Uint32(loc[:]) != zipDir64LocSig {
			return &UnsafeError{Reason: "is a damaged zip64 (no locator)"}
		}
		off := binary.LittleEndian.Uint64(loc[8:])
		var e64 [zipDir64EndLen]byte
		if off > uint64(size) {
			return &UnsafeError{Reason: "is a damaged zip64 (end record out of the file)"}
		}
		if _, err := r.ReadAt(e64[:], int64(off)); err != nil || binary.LittleEndian.Uint32(e64[:]) != zipDir64EndSig {
			return &UnsafeError{Reason: "is a damaged zip64 (no end record)"}
		}
		records = binary.LittleEndian.Uint64(e64[32:])
		dirSize = binary.LittleEndian.Uint64(e64[40:])
		dirOff = binary.LittleEndian.Uint64(e64[48:])
	}
	if records > uint64(max) {
		return &UnsafeError{Reason: fmt.Sprintf("declares %d entries: the limit is %d", records, max)}
	}
	if dirOff > uint64(size) || dirSize > uint64(size) {
		return &UnsafeError{Reason: "is a damaged zip (central directory out of the file)"}
	}
	// archive/zip reads from here until a header is not one (a zip with
	// data before it counts from where the end record says).
	start := int64(dirOff)
	if base := endOff - int64(dirSize) - int64(dirOff); base > 0 {
		start += base
	}
	br := bufio.NewReader(io.NewSectionReader(r, start, size-start))
	var h [zipDirHeaderLen]byte
	for count := 0; ; count++ {
		if _, err := io.ReadFull(br, h[:]); err != nil || binary.LittleEndian.Uint32(h[:]) != zipDirHeaderSig {
			return nil
		}
		if count >= max {
			return &UnsafeError{Reason: fmt.Sprintf("holds more than %d entries", max)}
		}
		skip := int64(binary.LittleEndian.Uint16(h[28:])) + int64(binary.LittleEndian.Uint16(h[30:])) + int64(binary.LittleEndian.Uint16(h[32:]))
		if _, err := br.Discard(int(skip)); err != nil {
			return nil
		}
	}
}
