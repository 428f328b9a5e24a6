package api

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

const (
	defaultLimit = 50
	maxLimit     = 500
)

// listBody is every list response.
type listBody[T any] struct {
	Items  []T   `json:"items"`
	Total  int64 `json:"total"`
	Limit  int   `json:"limit"`
	Offset int   `json:"offset"`
}

// pathID parses the :id path parameter.
func pathID(c *fiber.Ctx) (int64, error) {
	raw := c.Params("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("id", "id %q in the path must be a positive integer", raw)
	}
	return id, nil
}

// page parses ?limit= (1..500, default 50) and ?offset= (>= 0, default 0).
func page(c *fiber.Ctx) (configstore.Page, error) {
	p := configstore.Page{Limit: defaultLimit}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxLimit {
			return p, invalid("limit", "limit must be an integer from 1 to %d", maxLimit)
		}
		p.Limit = n
	}
	if raw := c.Query("offset"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return p, invalid("offset", "offset must be an integer of 0 or more")
		}
		p.Offset = n
	}
	return p, nil
}
