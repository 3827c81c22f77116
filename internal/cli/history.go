package cli

import (
	"flag"

	"github.com/lian-build/action/internal/sizing"
)

// historyFlags select where P95 history comes from (filled in by the metrics store).
type historyFlags struct{}

func (h *historyFlags) register(*flag.FlagSet) {}

func (h *historyFlags) open() (sizing.History, error) { return nil, nil }
