// Command lian-build-plugin is the Woodpecker CI plugin (image lian-build-plugin).
package main

import (
	"os"

	"github.com/lian-build/action/internal/woodpecker"
)

func main() { os.Exit(woodpecker.Process(os.Args[1:], os.Environ(), os.Stdout)) }
