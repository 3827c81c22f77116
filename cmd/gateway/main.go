// Command gateway is lian-build's GitHub App webhook gateway.
package main

import (
	"os"

	"github.com/lian-build/action/internal/gateway"
)

func main() { os.Exit(gateway.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }
