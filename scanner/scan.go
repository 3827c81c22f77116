package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/format"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/directorysource"
)

// The protocol's environment variables.
const (
	envDestination = "BUILDKIT_SCAN_DESTINATION"
	envSource      = "BUILDKIT_SCAN_SOURCE"
	envExtras      = "BUILDKIT_SCAN_SOURCE_EXTRAS"
)

// contextTarget is the extra target BuildKit names after the build context
// (BUILDKIT_SBOM_SCAN_CONTEXT): a source tree, not an installed system.
const contextTarget = "sbom-context"

// Target is one filesystem to scan; its name (the path's last element)
// names its SBOM file.
type Target struct {
	Path string
}

// Name is the scan's name in the destination.
func (t Target) Name() string { return filepath.Base(t.Path) }

// Job is one run of the generator: the final stage, the extras (the
// context, named stages) and where the SBOMs go.
type Job struct {
	Core        Target
	Extras      []Target
	Destination string
}

// FromEnvironment reads a job from the protocol's variables. The extras
// are optional: unset, empty or a missing directory scans none.
func FromEnvironment(getenv func(string) string) (Job, error) {
	var j Job
	for _, v := range []struct {
		name string
		dst  *string
	}{{envDestination, &j.Destination}, {envSource, &j.Core.Path}} {
		p := getenv(v.name)
		if p == "" {
			return Job{}, fmt.Errorf("%s is not set: BuildKit's SBOM protocol runs this scanner", v.name)
		}
		if _, err := os.Stat(p); err != nil {
			return Job{}, fmt.Errorf("%s: %w", v.name, err)
		}
		*v.dst = p
	}
	extras := getenv(envExtras)
	if extras == "" {
		return j, nil
	}
	entries, err := os.ReadDir(extras)
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", envExtras, err)
	}
	for _, e := range entries {
		j.Extras = append(j.Extras, Target{Path: filepath.Join(extras, e.Name())})
	}
	return j, nil
}

// Run scans every target and writes DESTINATION/NAME.spdx.json for each.
func (j Job) Run(ctx context.Context) error {
	for _, t := range append([]Target{j.Core}, j.Extras...) {
		stmt, err := t.Statement(ctx)
		if err != nil {
			return fmt.Errorf("scanning %s: %w", t.Name(), err)
		}
		if err := os.WriteFile(filepath.Join(j.Destination, t.Name()+".spdx.json"), stmt, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// statement is an in-toto statement (v0.1, as BuildKit's unbundler reads
// it); BuildKit fills in the subject.
type statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []any           `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Statement is the target's SBOM: SPDX 2.3 JSON in an in-toto statement.
func (t Target) Statement(ctx context.Context) ([]byte, error) {
	doc, err := t.spdx(ctx)
	if err != nil {
		return nil, err
	}
	return json.Marshal(statement{Type: "https://in-toto.io/Statement/v0.1", PredicateType: "https://spdx.dev/Document", Subject: []any{}, Predicate: doc})
}

func (t Target) spdx(ctx context.Context) ([]byte, error) {
	src, err := directorysource.New(directorysource.Config{Path: t.Path, Base: t.Path, Alias: source.Alias{Name: t.Name()}})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// A root filesystem is an installed system (dpkg's database, binaries);
	// the build context is a source tree (lock files).
	tag := pkgcataloging.ImageTag
	if t.Name() == contextTarget {
		tag = pkgcataloging.DirectoryTag
	}
	cfg := syft.DefaultCreateSBOMConfig().
		WithTool("lian-sbom-scanner", syftVersion()).
		WithCatalogerSelection(cataloging.NewSelectionRequest().WithDefaults(tag))
	s, err := syft.CreateSBOM(ctx, src, cfg)
	if err != nil {
		return nil, err
	}
	enc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: "2.3", DefaultVersion: "2.3"})
	if err != nil {
		return nil, err
	}
	return format.Encode(*s, enc)
}

// syftVersion is the syft this scanner links ("syft v1.57.2").
func syftVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/anchore/syft" {
				return "syft " + d.Version
			}
		}
	}
	return "syft (unknown)"
}
