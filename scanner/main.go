// Command lian-sbom-scanner is a BuildKit SBOM generator
// (docs/attestations/sbom-protocol.md in moby/buildkit) built from
// github.com/anchore/syft: BuildKit runs it with the build's root
// filesystem mounted read-only and it writes one SPDX 2.3 document per
// scanned filesystem, as an in-toto statement, for BuildKit to attach to
// the image. It needs no network and no other image: `lian-build sbom
// scanner` packs it into a FROM-scratch image in the user's registry.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	_ "modernc.org/sqlite" // syft reads newer RPM databases (SQLite) through it
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	job, err := FromEnvironment(os.Getenv)
	if err == nil {
		err = job.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lian-sbom-scanner:", err)
		os.Exit(1)
	}
}
