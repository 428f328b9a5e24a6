package api

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// confinePaths keeps the files a destination names on the sink's host
// inside the directories an operator of the host chose: a DuckDB
// destination's path inside Config.DuckDBRoots (default: the data dir),
// so an API admin cannot make the sink create or overwrite any file it
// can write; a Snowflake private_key_path inside Config.KeysDir, so an
// admin cannot make the sink read any file it can read and send it to a
// server as a key; a Snowflake tls_ca_file there too, so an admin cannot
// make the sink trust a CA of their choosing or probe the host's files
// by the errors reading them gives. A relative DuckDB path is taken under
// the first root, a relative key or CA path under Config.KeysDir, and the
// stored path is the absolute one the sink opens.
//
// With no roots configured (an API built directly, as in tests) DuckDB
// paths are not confined; the services always configure them.
func (s *Server) confinePaths(in *configstore.DestinationInput) error {
	switch in.Type {
	case "duckdb":
		p, _ := in.Config["path"].(string)
		if len(s.cfg.DuckDBRoots) == 0 || p == "" {
			return nil
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.cfg.DuckDBRoots[0], p)
		}
		resolved, ok := within(p, s.cfg.DuckDBRoots)
		if !ok {
			return invalid("config.path", "config.path %q is outside the directories DuckDB files may be written to (%s): use a path under them, or have the operator of the host add its directory to ROSETTA_DUCKDB_ROOTS",
				in.Config["path"], strings.Join(s.cfg.DuckDBRoots, ", "))
		}
		in.Config["path"] = resolved
	case "snowflake":
		// Both are read by the sink from its own host: the key is sent to
		// the server it logs in to, and a CA file decides which servers
		// the sink trusts with the key and the rows.
		for _, field := range []string{"private_key_path", "tls_ca_file"} {
			if err := s.confineKeysFile(in, field); err != nil {
				return err
			}
		}
	}
	return nil
}

// confineKeysFile checks the Snowflake file named by config field against
// ROSETTA_KEYS_DIR (refused without it), taking a relative path under it,
// and stores the resolved absolute path.
func (s *Server) confineKeysFile(in *configstore.DestinationInput, field string) error {
	p, _ := in.Config[field].(string)
	if p == "" {
		return nil
	}
	name := "config." + field
	if s.cfg.KeysDir == "" {
		if field == "private_key_path" {
			return invalid(name, "%s is refused because ROSETTA_KEYS_DIR is not set: send the key as config.private_key (the PEM text, stored encrypted), or have the operator of the host set ROSETTA_KEYS_DIR to the directory holding keys", name)
		}
		return invalid(name, "%s is refused because ROSETTA_KEYS_DIR is not set: have the operator of the host put the CA file in a directory and set ROSETTA_KEYS_DIR to it, or leave %s out to trust the system's roots", name, name)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.cfg.KeysDir, p)
	}
	resolved, ok := within(p, []string{s.cfg.KeysDir})
	if !ok {
		return invalid(name, "%s %q is outside ROSETTA_KEYS_DIR (%s): put the file there and give its path under it", name, in.Config[field], s.cfg.KeysDir)
	}
	in.Config[field] = resolved
	return nil
}

// within resolves p (absolute) through any symbolic links in the part of
// it that exists, and reports whether the result lies strictly inside one
// of roots (resolved the same way). A link inside a root pointing out of
// it is outside.
func within(p string, roots []string) (string, bool) {
	resolved := resolveExisting(filepath.Clean(p))
	for _, r := range roots {
		root := resolveExisting(filepath.Clean(r))
		rel, err := filepath.Rel(root, resolved)
		if err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return resolved, true
		}
	}
	return resolved, false
}

// resolveExisting evaluates the symbolic links of the longest existing
// prefix of p and appends the rest unchanged.
func resolveExisting(p string) string {
	rest := ""
	for cur := p; ; {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest)
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
			return filepath.Join(cur, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
