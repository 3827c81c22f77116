package gateway

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/lian-build/action/internal/frontdoor"
)

// nclTypeAnnotation gives a flag's type in the configuration schema when
// its flag type does not say it (an id given as text, checked as a number).
const nclTypeAnnotation = "lian-build/ncl-type"

// SchemaFile is where the repository keeps Schema's output (embedded by
// package schemas); TestSchemaIsGenerated keeps it current.
const SchemaFile = "schemas/gateway.ncl"

// Schema is the configuration file's Nickel schema, made from the
// gateway's flags: one optional field per flag ('-' written '_'), typed by
// the flag (a list flag or a comma-separated one is an array, a setting
// with fixed choices an enum), its help as the field's comment.
func Schema() string {
	var b strings.Builder
	b.WriteString(`# GatewayConfig: the gateway's configuration file (` + "`gateway --config FILE`" + `,
# ` + "`gateway check-config FILE`" + `). Every field is the flag of the same name
# with '-' written '_'; flags and LIAN_GATEWAY_* variables override the file.
# Secrets never go here: only the paths of the files that hold them.
#
# Generated from the gateway's flags (go test ./internal/gateway with
# LIAN_UPDATE_SCHEMA=1); do not edit.
`)
	fmt.Fprintf(&b, "let Tier = %s in\n{\n", enum(frontdoor.Table().Names()))
	b.WriteString(`  Repository = {
    # owner/repo the settings apply to.
    repository | String,
    workspace | String | optional,
    # The tier of every build of the repository (a /lian rebuild TIER still wins).
    runner_type | Tier | optional,
    # The platforms of every build of the repository, OS/ARCH[/VARIANT]: one runner per
    # architecture where the provider has machines of each, one image index.
    platforms | Array String | optional,
  },

  GatewayConfig = {
`)
	gatewayFlags(&Config{}, &fileFlags{}).VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		for _, line := range wrap(f.Usage, 90) {
			fmt.Fprintf(&b, "    # %s\n", line)
		}
		fmt.Fprintf(&b, "    %s | %s | optional,\n", strings.ReplaceAll(f.Name, "-", "_"), nclType(f))
	})
	b.WriteString("    # Settings per repository: they win over the repository's own directives.\n")
	b.WriteString("    repositories | Array Repository | optional,\n  },\n}\n")
	return b.String()
}

// nclType is a flag's type in the schema.
func nclType(f *pflag.Flag) string {
	if t := f.Annotations[nclTypeAnnotation]; len(t) == 1 {
		return t[0]
	}
	if choices := f.Annotations[frontdoor.ChoicesAnnotation]; len(choices) > 0 {
		return enum(choices)
	}
	switch f.Value.Type() {
	case "bool":
		return "Bool"
	case "int", "int64", "uint":
		return "Number"
	case "strings", "stringArray":
		return "Array String"
	}
	if len(f.Annotations[frontdoor.CommaAnnotation]) > 0 {
		return "Array String"
	}
	return "String"
}

// enum is a Nickel enum type of the choices.
func enum(choices []string) string {
	tags := make([]string, len(choices))
	for i, c := range choices {
		tags[i] = "'" + c
	}
	return "[| " + strings.Join(tags, ", ") + " |]"
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
