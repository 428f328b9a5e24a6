package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// devToken returns the admin token of `rosetta dev` run without
// ROSETTA_API_TOKEN: the one stored under dataDir, or a new one written
// there readable by the user only. created says whether it is new.
func devToken(dataDir string) (token, path string, created bool, err error) {
	path = filepath.Join(dataDir, settings.DevTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		token = strings.TrimSpace(string(b))
		if err := apitoken.CheckBootstrap(token); err != nil {
			return "", path, false, fmt.Errorf("%s: %w (delete the file to have a new one generated)", path, err)
		}
		return token, path, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", path, false, fmt.Errorf("read dev API token: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("create data dir for the dev API token: %w", err)
	}
	token, err = apitoken.Generate()
	if err != nil {
		return "", path, false, err
	}
	// O_EXCL: two dev processes sharing a data dir do not overwrite each
	// other's token.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", path, false, fmt.Errorf("write dev API token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, false, fmt.Errorf("write dev API token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", path, false, fmt.Errorf("write dev API token: %w", err)
	}
	return token, path, true, nil
}
