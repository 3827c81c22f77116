// Command fake-hcloud serves the fake Hetzner Cloud API of the tests, with
// real runner hosts, to try --provider hcloud without an account (root).
package main

import (
	"os"

	"github.com/lian-build/action/internal/testenv/runnerhost"
)

func main() { os.Exit(runnerhost.Main(os.Args[1:], os.Stdout, os.Stderr)) }
