package bundle

// Limits bound what a reader accepts and a writer produces. Every limit is
// checked before memory of that size is allocated; going over one yields a
// [*LimitError].
type Limits struct {
	// MaxHeaderSize bounds the header length field.
	MaxHeaderSize uint64
	// MaxBundleSize bounds the whole bundle: magic, header, signature and
	// payload. It stays under 1 GiB so that FAT32 sticks (4 GiB files) and
	// small nodes carry any bundle comfortably.
	MaxBundleSize uint64
	// MaxContentSize bounds the decompressed record stream: no zstd bomb
	// gets past it.
	MaxContentSize uint64
	// MaxRecords bounds the number of records in one bundle.
	MaxRecords uint64
	// MaxRecordSize bounds one record.
	MaxRecordSize uint64
}

// Default limits.
const (
	DefaultMaxHeaderSize  = 4 << 10
	DefaultMaxBundleSize  = 1<<30 - 1
	DefaultMaxContentSize = 4 << 30
	DefaultMaxRecords     = 1 << 20
	DefaultMaxRecordSize  = 64 << 20
)

// maxWindow bounds the zstd window a reader accepts, and so the memory a
// decoder needs. Writers use a smaller window.
const maxWindow = 8 << 20

// writerWindow is the zstd window writers use.
const writerWindow = 4 << 20

// DefaultLimits returns the limits every node accepts.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderSize:  DefaultMaxHeaderSize,
		MaxBundleSize:  DefaultMaxBundleSize,
		MaxContentSize: DefaultMaxContentSize,
		MaxRecords:     DefaultMaxRecords,
		MaxRecordSize:  DefaultMaxRecordSize,
	}
}

// orDefault fills zero fields with the defaults.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxHeaderSize == 0 {
		l.MaxHeaderSize = d.MaxHeaderSize
	}
	if l.MaxBundleSize == 0 {
		l.MaxBundleSize = d.MaxBundleSize
	}
	if l.MaxContentSize == 0 {
		l.MaxContentSize = d.MaxContentSize
	}
	if l.MaxRecords == 0 {
		l.MaxRecords = d.MaxRecords
	}
	if l.MaxRecordSize == 0 {
		l.MaxRecordSize = d.MaxRecordSize
	}
	return l
}
