package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/lian-build/action/internal/lamina"
)

// runCatalog is `lian-build catalog check [DIR] [--check-dag]`.
func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageErr("usage: lian-build catalog check [DIR] [--check-dag]")
	}
	fs := newFlagSet("lian-build catalog check", stderr)
	dag := fs.Bool("check-dag", false, "also check the DAG: every base resolves, no cycle, no duplicate name; list the unused layers")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return flagErr(err)
	}
	dir := "."
	switch len(pos) {
	case 0:
	case 1:
		dir = pos[0]
	default:
		return usageErr("catalog check takes one DIR")
	}
	c, err := lamina.Load(ctx, dir)
	if err != nil {
		return err
	}
	if !*dag {
		fmt.Fprintf(stdout, "%s: %d layers, every %s valid\n", dir, len(c.Layers), lamina.WorkflowFile)
		return nil
	}
	if err := c.Check(); err != nil {
		return err
	}
	var levels []string
	for _, lv := range c.Order() {
		var names []string
		for _, l := range lv {
			names = append(names, l.Name)
		}
		levels = append(levels, strings.Join(names, ", "))
	}
	fmt.Fprintf(stdout, "%s: %d layers, a DAG\n  build order: %s\n  unused (no layer builds on them): %s\n",
		dir, len(c.Layers), strings.Join(levels, " → "), strings.Join(c.Unused(), ", "))
	return nil
}
