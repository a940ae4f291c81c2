//go:build !unix

package usb

// freeSpace cannot tell on this system; the export stops when a write
// fails for want of space.
func freeSpace(string) int64 { return -1 }

func totalSpace(string) int64 { return 0 }
