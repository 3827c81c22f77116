// Command lian-build builds container images on fresh, right-sized BuildKit
// runners. See `lian-build help`.
package main

import (
	"os"

	"github.com/lian-build/action/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:])) }
