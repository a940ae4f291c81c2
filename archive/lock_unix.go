//go:build unix

package archive

import (
	"os"
	"syscall"
)

// tryLock takes an exclusive advisory lock on f without waiting: a pack
// being written by a live process stays locked, so no other process
// reclaims or appends to it. The lock dies with the process.
func tryLock(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
