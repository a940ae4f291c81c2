//go:build !linux

package usb

import "os"

// adviseSequential is a hint that only Linux takes.
func adviseSequential(*os.File) {}
