// Package gateway is the GitHub App webhook gateway: it verifies and
// deduplicates deliveries, routes pushes and `/lian rebuild` comments to
// builds, queues them durably on JetStream, runs them through the shared
// pipeline and reports each as a Check Run.
//
// Layers: command.go and route.go are pure (payload in, decision out);
// intake.go only handles HTTP; queue.go, worker.go and jobs.go act.
package gateway

import (
	"strings"
)

// Command is a `/lian …` line of a comment.
type Command struct {
	Verb string // "rebuild", "help", or what was written after /lian
	Arg  string // the tier of /lian rebuild TIER
}

// ParseCommand finds the first `/lian …` line of a comment body. Lines in
// fenced or indented code blocks and in quotes are not commands. It never
// panics; ok is false when there is no command.
func ParseCommand(body string) (cmd Command, ok bool) {
	fence := ""
	for _, raw := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(trimmed)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if indent <= 3 && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")) {
			fence = trimmed[:3]
			continue
		}
		if indent >= 4 || strings.HasPrefix(raw, "\t") || strings.HasPrefix(trimmed, ">") {
			continue // indented code block, or a quote of someone else's command
		}
		fields := strings.Fields(trimmed)
		if len(fields) == 0 || fields[0] != "/lian" {
			continue
		}
		if len(fields) == 1 {
			return Command{Verb: "help"}, true
		}
		cmd = Command{Verb: strings.ToLower(fields[1])}
		if len(fields) > 2 {
			cmd.Arg = strings.ToLower(fields[2])
		}
		return cmd, true
	}
	return Command{}, false
}
