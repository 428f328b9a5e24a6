// Package web holds the admin console's built files (web/dist/console,
// written by `make build`) embedded into the binary, and the front end's
// sources (web/src, a Vite + React project). The API serves the console at
// "/" (services/api console.go).
//
// A fresh clone compiles without the front end built: dist/ then holds
// only its README, and Console reports that index.html is missing.
package web

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Console returns the built console's files, rooted at the directory that
// holds index.html. built is false when the front end was not built before
// the binary (then the returned FS is empty).
func Console() (files fs.FS, built bool, err error) {
	sub, err := fs.Sub(dist, "dist/console")
	if err != nil {
		return nil, false, fmt.Errorf("console files: %w", err)
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return sub, false, nil
	}
	return sub, true, nil
}
