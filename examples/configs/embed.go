// Package configs embeds the example configurations so that the binary can run them by name
// (`sprout --config sprout:backend`) and run all-in-one with no flags at all.
package configs

import "embed"

// FS holds every *.yaml file of this directory.
//
//go:embed *.yaml
var FS embed.FS
