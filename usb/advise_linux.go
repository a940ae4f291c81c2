package usb

import (
	"os"

	"golang.org/x/sys/unix"
)

// adviseSequential tells the kernel that f is read from start to end, so
// that it reads further ahead.
func adviseSequential(f *os.File) { unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL) }
