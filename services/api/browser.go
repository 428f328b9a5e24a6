package api

import (
	"mime"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// browserGuard keeps web pages from driving the API (docs/security.md):
//
//   - a request with an Origin other than the API's own and those in
//     Config.AllowedOrigins is refused (403), before anything runs;
//   - a body must be declared application/json (415 otherwise), and so may
//     a bodiless change not be declared as a form: the content types a page
//     can send cross-site without a preflight are refused;
//   - on a loopback listener the Host header must name loopback (403
//     otherwise): a page on a DNS-rebound name reaches 127.0.0.1 with its
//     own name as Host;
//   - CORS is off unless AllowedOrigins is set: then those origins get
//     CORS headers and preflights are answered.
func (s *Server) browserGuard(c *fiber.Ctx) error {
	if s.loopbackOnly() && !loopbackHost(c.Hostname()) {
		return &apiError{status: fiber.StatusForbidden,
			msg: "this API listens on loopback and answers only requests addressed to localhost, 127.0.0.1 or [::1] (the Host header)"}
	}
	origin := c.Get(fiber.HeaderOrigin)
	allowed := slices.Contains(s.cfg.AllowedOrigins, origin)
	if origin != "" && !allowed && !sameOrigin(origin, c) {
		return &apiError{status: fiber.StatusForbidden,
			msg: "cross-origin request refused: add the origin to ROSETTA_ALLOWED_ORIGINS to allow it"}
	}
	if allowed && origin != "" {
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
		c.Vary(fiber.HeaderOrigin)
		if c.Method() == fiber.MethodOptions {
			c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST, PUT, DELETE")
			c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Content-Type")
			c.Set(fiber.HeaderAccessControlMaxAge, "600")
			return c.SendStatus(fiber.StatusNoContent)
		}
	}
	switch c.Method() {
	case fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete:
		ct := c.Get(fiber.HeaderContentType)
		mt, _, err := mime.ParseMediaType(ct)
		if len(c.Body()) > 0 && (err != nil || mt != fiber.MIMEApplicationJSON) {
			return &apiError{status: fiber.StatusUnsupportedMediaType,
				msg: "the body must be JSON sent with Content-Type: application/json"}
		}
		if ct != "" && err == nil && mt != fiber.MIMEApplicationJSON {
			return &apiError{status: fiber.StatusUnsupportedMediaType,
				msg: "Content-Type must be application/json (or absent, without a body)"}
		}
	}
	return c.Next()
}

// sameOrigin reports whether origin is the API's own: the scheme and the
// host (with port) the request was addressed to.
func sameOrigin(origin string, c *fiber.Ctx) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, c.Get(fiber.HeaderHost)) && u.Scheme == c.Protocol()
}

func loopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
