// Package schemas embeds the Nickel contracts that users read and that
// lian-build evaluates: one source of truth.
package schemas

import "embed"

// FS holds build_spec.ncl, build_directives.ncl, cache_policy.ncl, gateway.ncl,
// defaults/ and lamina/.
//
//go:embed *.ncl defaults/*.ncl lamina/*.ncl
var FS embed.FS
