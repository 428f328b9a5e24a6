package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// readOnlyPosts are POST routes that change nothing (they check a config)
// and so are not audited.
var readOnlyPosts = map[string]bool{"/api/v1/destinations/check": true}

// audited records a successful change in the audit log: the token's name,
// the action, the entity, and the entity as the API shows it before (PUT
// and DELETE of sources, destinations and pipelines) and after (the
// response). Responses never hold secrets; scrub removes the one that
// does (a new token's value) and any secret field, to be sure.
func (s *Server) audited(method, path string) fiber.Handler {
	rel := strings.TrimPrefix(path, "/api/v1/")
	segs := strings.Split(rel, "/")
	entity := segs[0]
	action := auditAction(method, segs)
	return func(c *fiber.Ctx) error {
		ids := auditIDs(c, segs)
		var before json.RawMessage
		if (method == fiber.MethodPut || method == fiber.MethodDelete) && len(segs) == 2 {
			before = s.snapshot(c.UserContext(), entity, c.Params("id"))
		}
		if err := c.Next(); err != nil {
			return err
		}
		if st := c.Response().StatusCode(); st < 200 || st >= 300 {
			return nil
		}
		// Empty after a delete (204); a revoked token's record otherwise.
		after := scrub(c.Response().Body())
		if ids == "" && len(after) > 0 {
			var v struct {
				ID json.Number `json:"id"`
			}
			if json.Unmarshal(after, &v) == nil {
				ids = v.ID.String()
			}
		}
		e := configstore.AuditEntry{Action: action, Entity: entity, EntityID: ids, Before: before, After: after}
		if t, ok := caller(c); ok {
			e.TokenID, e.TokenName = &t.ID, t.Name
		}
		// The change is committed: record it even if the client has gone.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), 5*time.Second)
		defer cancel()
		if err := s.store.AppendAudit(ctx, e); err != nil {
			s.log.Error("audit log: change committed but not recorded", "action", action, "entity", entity, "id", ids, "error", err)
		}
		return nil
	}
}

// auditAction names a change: create, update, delete, or the last path
// segment of an action route (start, pause, discard-dlq, ...).
func auditAction(method string, segs []string) string {
	switch {
	case method == fiber.MethodPost && len(segs) == 1:
		return "create"
	case method == fiber.MethodPut:
		return "update"
	case method == fiber.MethodDelete && segs[0] == "tokens":
		return "revoke"
	case method == fiber.MethodDelete:
		return "delete"
	}
	return segs[len(segs)-1]
}

// auditIDs joins the route's path parameters ("3", "3/2").
func auditIDs(c *fiber.Ctx, segs []string) string {
	var ids []string
	for _, s := range segs {
		if strings.HasPrefix(s, ":") {
			ids = append(ids, c.Params(s[1:]))
		}
	}
	return strings.Join(ids, "/")
}

// snapshot is an entity as GET shows it, for the audit log's before; nil
// when it cannot be read (the handler then answers the error).
func (s *Server) snapshot(ctx context.Context, entity, rawID string) json.RawMessage {
	var id int64
	if err := json.Unmarshal([]byte(rawID), &id); err != nil {
		return nil
	}
	var v any
	var err error
	switch entity {
	case "sources":
		var src configstore.Source
		src, err = s.store.GetSource(ctx, id)
		v = viewSource(src)
	case "destinations":
		var d configstore.Destination
		d, err = s.store.GetDestination(ctx, id)
		v = s.viewDestination(d)
	case "pipelines":
		var p configstore.Pipeline
		p, err = s.store.GetPipeline(ctx, id)
		v = viewPipeline(p)
	case "tokens":
		var t configstore.Token
		t, err = s.store.GetToken(ctx, id)
		v = viewToken(t)
	default:
		return nil
	}
	if err != nil {
		if !errors.Is(err, configstore.ErrNotFound) {
			s.log.Warn("audit log: read entity before change", "entity", entity, "id", id, "error", err)
		}
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return scrub(b)
}

// scrub removes secret fields (and a new token's value) from a JSON
// document at any depth; a body that is not a JSON object or array is
// dropped.
func scrub(body []byte) json.RawMessage {
	var v any
	if len(body) == 0 || json.Unmarshal(body, &v) != nil {
		return nil
	}
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				if k == "token" || configstore.IsSecretField(k) {
					delete(t, k)
					continue
				}
				walk(val)
			}
		case []any:
			for _, val := range t {
				walk(val)
			}
		}
	}
	walk(v)
	switch v.(type) {
	case map[string]any, []any:
	default:
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// auditView is one entry of GET /audit.
type auditView struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Token    string          `json:"token"`
	Action   string          `json:"action"`
	Entity   string          `json:"entity"`
	EntityID string          `json:"entity_id"`
	Before   json.RawMessage `json:"before"`
	After    json.RawMessage `json:"after"`
}

func (s *Server) listAudit(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	entries, total, err := s.store.ListAudit(c.UserContext(), p)
	if err != nil {
		return err
	}
	items := make([]auditView, len(entries))
	for i, e := range entries {
		items[i] = auditView{ID: e.ID, At: e.At, Token: e.TokenName, Action: e.Action, Entity: e.Entity, EntityID: e.EntityID,
			Before: nullRaw(e.Before), After: nullRaw(e.After)}
	}
	return c.JSON(listBody[auditView]{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset})
}

func nullRaw(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
