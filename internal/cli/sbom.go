package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lian-build/action/internal/platforms"
	"github.com/lian-build/action/internal/sbom"
)

// scannerBinary is the scanner's file name, beside lian-build or on PATH.
const scannerBinary = "lian-sbom-scanner"

// sbomCommand is `lian-build sbom scanner REPOSITORY`.
func sbomCommand() *cobra.Command {
	c := &cobra.Command{Use: "sbom", Short: "SBOMs without Docker Hub: push lian-build's syft scanner image to your registry"}
	asGroup(c)
	var binaries, insecure []string
	scanner := &cobra.Command{
		Use:   "scanner REPOSITORY",
		Short: "push the SBOM scanner image (FROM scratch, syft inside) and print the REPOSITORY@sha256:… to pass as --sbom-scanner",
		Example: "  lian-build sbom scanner registry.example.com/tools/lian-sbom-scanner\n" +
			"  lian-build sbom scanner reg.internal/tools/scanner --binary amd64=bin/lian-sbom-scanner --binary arm64=bin/lian-sbom-scanner-arm64",
		Args: args(1, 1, "REPOSITORY"),
		RunE: func(c *cobra.Command, a []string) error {
			bins, err := scannerBinaries(binaries)
			if err != nil {
				return err
			}
			ref, err := sbom.Registry{Registry: platforms.Registry{Insecure: insecure}}.PushScanner(c.Context(), a[0], bins)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), ref)
			fmt.Fprintf(c.ErrOrStderr(), "pushed; build with --sbom --sbom-scanner %s (Action: sbom-scanner; Woodpecker: sbom_scanner)\n", ref)
			return nil
		},
	}
	scanner.Flags().StringArrayVar(&binaries, "binary", nil, "the scanner built for an architecture, ARCH=PATH (repeatable; default: "+scannerBinary+" beside lian-build or on PATH, for this machine's architecture)")
	scanner.Flags().StringSliceVar(&insecure, "insecure-registry", nil, "registries reached over plain HTTP (HOST:PORT)")
	c.AddCommand(scanner)
	return c
}

// scannerBinaries reads --binary ARCH=PATH; without one, the scanner
// beside this executable or on PATH, for the host's architecture.
func scannerBinaries(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		arch, path, ok := strings.Cut(f, "=")
		if !ok || (arch != "amd64" && arch != "arm64") || path == "" {
			return nil, usageErr("--binary %q: want ARCH=PATH (ARCH amd64 or arm64)", f)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, usageErr("--binary %s: %v", arch, err)
		}
		out[arch] = path
	}
	if len(out) > 0 {
		return out, nil
	}
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), scannerBinary); fileExists(p) {
			return map[string]string{runtime.GOARCH: p}, nil
		}
	}
	p, err := exec.LookPath(scannerBinary)
	if err != nil {
		return nil, usageErr("--binary: no %s beside lian-build or on PATH (make tools builds it from the scanner/ module)", scannerBinary)
	}
	return map[string]string{runtime.GOARCH: p}, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
