package testenv

import "github.com/lian-build/action/internal/testenv/syncbuf"

// SyncBuffer is a bytes.Buffer that a logger may write while a test reads it.
type SyncBuffer = syncbuf.Buffer
