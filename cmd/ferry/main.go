// Command ferry runs a ferry node: a delay-tolerant messenger and archive
// for communities, carried by USB sticks, LAN, BLE and LoRa.
//
// Run "ferry help" for the commands. Exit status: 0 on success, 1 when the
// command failed or (import) refused any bundle, 2 for a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// memoryLimit is the Go heap size at which the garbage collector works
// harder (a soft limit; GOMEMLIMIT overrides it): a Raspberry Pi Zero has
// 512 MB, and archive adds, sends and stick syncs of large items stay
// well under 64 MiB of peak memory with it (docs/benchmarks.md).
const memoryLimit = 32 << 20

// sendMemoryLimit is the soft limit of ferry files send, which compresses
// two parts at once: at 32 MiB the collector would run thousands of times
// over a gigabyte; at 48 MiB the command peaks near 58 MiB.
const sendMemoryLimit = 48 << 20

// raiseMemoryLimit sets the soft limit to n, unless GOMEMLIMIT set it.
func raiseMemoryLimit(n int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n)
	}
}

func main() {
	raiseMemoryLimit(memoryLimit)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if !errors.Is(err, errQuiet) {
			fmt.Fprintln(os.Stderr, "ferry:", err)
		}
		os.Exit(code)
	}
}
