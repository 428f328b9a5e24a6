package api

import (
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// consoleSecurityPolicy keeps the console to its own origin: scripts,
// styles and API calls come from this server only (the console calls
// nothing outside the Rosetta API), and no other site may frame it.
const consoleSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// consoleMissingPage answers at "/" when the binary was built before the
// front end (a fresh clone's `go build ./...`).
const consoleMissingPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rosetta console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>The Rosetta console is not built into this binary</h1>
<p>This binary was compiled before the web console was built. Run <code>make build</code>
(it installs the front end's npm packages, builds <code>web/</code> and then the binary),
and start Rosetta again.</p>
<p>The REST API works without it, under <a href="/api/v1/health">/api/v1</a>.</p>
</body></html>
`

// UseConsole serves the admin console's built files (web.Console) at "/":
// a path naming a file gets the file, any other path outside /api and
// /metrics gets index.html, so the console's own routes (/pipelines/3)
// load on a reload. When built is false, every such path gets a page
// saying how to build the console. Hashed assets under /assets are cached
// for good; index.html is revalidated so a new binary's console is picked
// up.
func (s *Server) UseConsole(files fs.FS, built bool) {
	h := consoleHandler(files, built)
	s.app.Get("/*", h)
	s.app.Head("/*", h)
}

// consoleHandler serves files (see UseConsole); paths under /api and
// /metrics go on to the next route.
func consoleHandler(files fs.FS, built bool) fiber.Handler {
	if files == nil {
		built = false
	}
	return func(c *fiber.Ctx) error {
		p := c.Path()
		if p == "/api" || strings.HasPrefix(p, "/api/") || p == "/metrics" {
			return c.Next()
		}
		c.Set("Content-Security-Policy", consoleSecurityPolicy)
		c.Set("X-Content-Type-Options", "nosniff")
		c.Set("Referrer-Policy", "no-referrer")
		if !built {
			c.Set("Cache-Control", "no-store")
			c.Type("html", "utf-8")
			return c.Status(fiber.StatusNotFound).SendString(consoleMissingPage)
		}
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if name != "" && name != "index.html" {
			body, err := fs.ReadFile(files, name)
			if err == nil {
				if strings.HasPrefix(name, "assets/") {
					c.Set("Cache-Control", "public, max-age=31536000, immutable")
				} else {
					c.Set("Cache-Control", "no-cache")
				}
				if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
					c.Set("Content-Type", ct)
				}
				return c.Send(body)
			}
			if strings.HasPrefix(name, "assets/") || path.Ext(name) != "" {
				// A missing file (an old page asking for an asset this
				// binary does not have) is a 404, not index.html.
				return c.Status(fiber.StatusNotFound).SendString("not found")
			}
		}
		index, err := fs.ReadFile(files, "index.html")
		if err != nil {
			return err
		}
		c.Set("Cache-Control", "no-cache")
		c.Type("html", "utf-8")
		return c.Send(index)
	}
}
