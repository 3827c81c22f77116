package events

import "github.com/lian-build/action/internal/redact"

// redactURL hides a password or token in a NATS URL before it is logged.
func redactURL(s string) string { return redact.URL(s) }
