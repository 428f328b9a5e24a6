package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// maxTokenLifetime bounds expires_in / expires_at: ten years.
const maxTokenLifetime = 10 * 365 * 24 * time.Hour

// tokenRequest is POST /tokens. expires_at and expires_in ("720h") are
// exclusive; neither means the token never expires.
type tokenRequest struct {
	Name      *string    `json:"name"`
	Role      *string    `json:"role"`
	ExpiresAt *time.Time `json:"expires_at"`
	ExpiresIn *string    `json:"expires_in"`
}

// tokenView is a token as the API shows it: never its value, except once
// in the answer to POST /tokens (Token).
type tokenView struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Token      string     `json:"token,omitempty"`
}

func viewToken(t configstore.Token) tokenView {
	return tokenView{ID: t.ID, Name: t.Name, Role: t.Role.String(), CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt,
		ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt}
}

// TokenInput validates a token's name, role and expiry as given to the
// API or to `rosetta token create` (expiresIn: a Go duration like 720h).
func TokenInput(name, role string, expiresAt *time.Time, expiresIn string, now time.Time) (configstore.TokenInput, error) {
	n, err := optionalString("name", name, maxNameLen, true)
	if err != nil {
		return configstore.TokenInput{}, err
	}
	r, err := apitoken.ParseRole(role)
	if err != nil {
		return configstore.TokenInput{}, invalid("role", "%v", err)
	}
	in := configstore.TokenInput{Name: n, Role: r}
	switch {
	case expiresAt != nil && expiresIn != "":
		return in, invalid("expires_in", "give expires_at or expires_in, not both")
	case expiresIn != "":
		d, err := time.ParseDuration(expiresIn)
		if err != nil || d <= 0 || d > maxTokenLifetime {
			return in, invalid("expires_in", "expires_in must be a positive duration like 720h, at most 87600h")
		}
		t := now.Add(d)
		in.ExpiresAt = &t
	case expiresAt != nil:
		if !expiresAt.After(now) || expiresAt.Sub(now) > maxTokenLifetime {
			return in, invalid("expires_at", "expires_at must be in the future, within ten years")
		}
		in.ExpiresAt = expiresAt
	}
	return in, nil
}

func (s *Server) createToken(c *fiber.Ctx) error {
	var req tokenRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return invalid("name", "name is required")
	}
	if req.Role == nil {
		return invalid("role", "role is required: viewer, operator or admin")
	}
	in := ""
	if req.ExpiresIn != nil {
		in = *req.ExpiresIn
	}
	input, err := TokenInput(*req.Name, *req.Role, req.ExpiresAt, in, time.Now())
	if err != nil {
		return err
	}
	value, t, err := s.store.CreateToken(c.UserContext(), input)
	if err != nil {
		return fromStore(err)
	}
	v := viewToken(t)
	v.Token = value
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(v)
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	withRevoked := c.Query("revoked") == "true"
	toks, total, err := s.store.ListTokens(c.UserContext(), withRevoked, p)
	if err != nil {
		return err
	}
	items := make([]tokenView, len(toks))
	for i, t := range toks {
		items[i] = viewToken(t)
	}
	return c.JSON(listBody[tokenView]{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset})
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	t, err := s.store.RevokeToken(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("token %d does not exist", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(viewToken(t))
}
