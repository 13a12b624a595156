// Package web holds Sprout's UI: its TypeScript source (src/), and its built assets (dist/), which are
// committed and embedded here so that `go build` needs no Node. `npm ci && npm run build` rebuilds dist/;
// scripts/check-dist.sh fails when the committed dist/ does not match the source. This package only exposes the
// files; serving them (headers, fallback, config) is components/uiext's job.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist is the built UI: index.html at the root, hashed assets under assets/.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the directory is embedded at compile time: it cannot be missing
	}
	return sub
}
