package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// waitForSocket blocks until path exists, woken by inotify rather than by
// polling, or until ctx ends. client.Wait retries only once a second, so
// waiting for the socket first takes a second off every spawn.
func waitForSocket(ctx context.Context, path string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		return fmt.Errorf("inotify watch %s: %w", filepath.Dir(path), err)
	}
	// Closing the file unblocks the read below when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(unixEpoch) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if _, err := f.Read(buf); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("inotify read: %w", err)
			}
		}
	}
}

var unixEpoch = time.Unix(1, 0)
