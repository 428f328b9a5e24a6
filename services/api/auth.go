package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// tokenLocal is the c.Locals key of the authenticated configstore.Token.
const tokenLocal = "rosetta.token"

// require authenticates the request's bearer token and lets it through
// when its role allows min. Only the Authorization header is read: a
// token in a URL ends up in logs, proxies and browser history.
func (s *Server) require(min apitoken.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok, err := s.authenticate(c)
		if err != nil {
			return err
		}
		if !tok.Role.Allows(min) {
			return &apiError{status: fiber.StatusForbidden,
				msg: fmt.Sprintf("this needs the %s role; token %q has the %s role", min, tok.Name, tok.Role)}
		}
		c.Locals(tokenLocal, tok)
		return c.Next()
	}
}

func (s *Server) authenticate(c *fiber.Ctx) (configstore.Token, error) {
	unauth := func(msg string) error {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="rosetta"`)
		return &apiError{status: fiber.StatusUnauthorized, msg: msg}
	}
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return configstore.Token{}, unauth("no API token: send the header `Authorization: Bearer <token>` (see docs/security.md)")
	}
	scheme, value, ok := strings.Cut(h, " ")
	value = strings.TrimSpace(value)
	if !ok || !strings.EqualFold(scheme, "Bearer") || value == "" {
		return configstore.Token{}, unauth("the Authorization header must be `Bearer <token>`")
	}
	tok, err := s.store.Authenticate(c.UserContext(), value)
	if errors.Is(err, configstore.ErrUnauthenticated) {
		return configstore.Token{}, unauth("invalid, revoked or expired API token")
	}
	if err != nil {
		s.log.Error("authenticate request", "path", c.Path(), "error", err)
		return configstore.Token{}, &apiError{status: fiber.StatusServiceUnavailable,
			msg: "cannot check the API token: the config database does not answer"}
	}
	return tok, nil
}

// Bootstrap stores the bootstrap admin token (ROSETTA_API_TOKEN) before
// the API serves. Without one it warns when no admin token exists, since
// then nobody can change the configuration.
func (s *Server) Bootstrap(ctx context.Context, token string) error {
	if token != "" {
		if err := s.store.EnsureBootstrapToken(ctx, token); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	}
	toks, _, err := s.store.ListTokens(ctx, false, configstore.Page{Limit: 500})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	for _, t := range toks {
		if t.Role == apitoken.Admin && (t.ExpiresAt == nil || t.ExpiresAt.After(time.Now())) {
			return nil
		}
	}
	s.log.Warn("no admin API token exists: set ROSETTA_API_TOKEN or run `rosetta token create --role admin` (docs/security.md)")
	return nil
}

// caller is the token that authenticated the request; ok is false on
// public routes.
func caller(c *fiber.Ctx) (configstore.Token, bool) {
	t, ok := c.Locals(tokenLocal).(configstore.Token)
	return t, ok
}

// whoamiView is GET /whoami.
type whoamiView struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (s *Server) whoami(c *fiber.Ctx) error {
	t, _ := caller(c)
	return c.JSON(whoamiView{Name: t.Name, Role: t.Role.String()})
}
