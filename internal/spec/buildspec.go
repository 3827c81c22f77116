package spec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/lian-build/action/internal/sizing"
)

// SpecFile is the spec's name at the root of a build context.
const SpecFile = ".build-spec.ncl"

// BuildSpec is .build-spec.ncl as schemas/build_spec.ncl defines it.
type BuildSpec struct {
	RunnerType    string   `json:"runner_type,omitempty"`
	CPU           *float64 `json:"cpu,omitempty"`
	MemoryGB      *float64 `json:"memory_gb,omitempty"`
	TimeBudgetMin *float64 `json:"time_budget_min,omitempty"`
	Language      string   `json:"language,omitempty"`
}

// Loader reads the spec of a build context; it backs the pipeline's sizing.
type Loader struct {
	Eval  Evaluator
	Table sizing.Table
	// Checkout is the directory the paths of a directives file must stay
	// in ("": CheckoutOf the file).
	Checkout string
}

// Load returns the context's spec, or nil when it has none.
func (l Loader) Load(ctx context.Context, contextDir string) (*sizing.Spec, error) {
	path := filepath.Join(contextDir, SpecFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	s, err := l.Check(ctx, path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Check evaluates and validates a .build-spec.ncl file.
func (l Loader) Check(ctx context.Context, path string) (*sizing.Spec, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, &MissingError{Path: path}
	}
	doc, err := l.Eval.contracted(ctx, filepath.Dir(abs), abs, "build_spec.ncl", "BuildSpec")
	if err != nil {
		return nil, err
	}
	var bs BuildSpec
	if err := decode(doc, &bs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	table := l.Table
	if table == nil {
		table = sizing.HCloud
	}
	out := &sizing.Spec{Language: bs.Language}
	if bs.RunnerType != "" {
		t, err := table.Lookup(bs.RunnerType)
		if err != nil {
			return nil, fieldErr(doc, abs, "runner_type", err)
		}
		out.RunnerType = t.Name
	}
	bounded := func(field string, v *float64) (int, error) {
		if v == nil {
			return 0, nil
		}
		if err := checkBound(*v, specBounds[field]); err != nil {
			return 0, fieldErr(doc, abs, field, err)
		}
		return int(math.Ceil(*v)), nil
	}
	if out.CPU, err = bounded("cpu", bs.CPU); err != nil {
		return nil, err
	}
	if out.MemoryGB, err = bounded("memory_gb", bs.MemoryGB); err != nil {
		return nil, err
	}
	if _, err := bounded("time_budget_min", bs.TimeBudgetMin); err != nil {
		return nil, err
	}
	if bs.TimeBudgetMin != nil {
		out.TimeBudget = time.Duration(*bs.TimeBudgetMin * float64(time.Minute))
	}
	if out.RunnerType == "" && (out.CPU > 0 || out.MemoryGB > 0) {
		if _, ok := table.Fit(out.CPU, out.MemoryGB); !ok {
			field := "cpu"
			if _, cpuFits := table.Fit(out.CPU, 0); cpuFits {
				field = "memory_gb"
			}
			return nil, fieldErr(doc, abs, field, fmt.Errorf("cpu = %d, memory_gb = %d fits no tier (largest: %s)", out.CPU, out.MemoryGB, table[len(table)-1].Name))
		}
	}
	return out, nil
}

// specBounds are the largest values a spec may give: beyond them a number is
// a mistake, and converting it to an integer would overflow.
var specBounds = map[string]float64{"cpu": 1024, "memory_gb": 16384, "time_budget_min": 7 * 24 * 60}

func checkBound(v, max float64) error {
	switch {
	case math.IsNaN(v) || v <= 0:
		return fmt.Errorf("must be positive, got %v", v)
	case v > max:
		return fmt.Errorf("%v is out of range (at most %v)", v, max)
	}
	return nil
}
