package api

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
)

// errorBody is every error response: {"error": "...", "field": "..."}.
// Field names the request field at fault, when there is one, as a JSON
// path ("port", "config.host", "tables").
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// apiError is an error with its HTTP status; handlers return it and
// handleError writes it.
type apiError struct {
	status int
	msg    string
	field  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{status: fiber.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{status: fiber.StatusUnprocessableEntity, field: field, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: fiber.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// fromProblem turns a failed pgcatalog check into a 422. prefix is put
// before the problem's field ("config." for destinations); field, when
// not empty, replaces it.
func fromProblem(p *pgcatalog.Problem, prefix, field string) *apiError {
	f := field
	if f == "" && p.Field != "" {
		f = prefix + p.Field
	}
	return &apiError{status: fiber.StatusUnprocessableEntity, field: f, msg: p.Msg}
}

// fromStore maps configstore's typed errors to responses; other errors
// are returned as they are and become a 500.
func fromStore(err error) error {
	var ce *configstore.ConflictError
	var re *configstore.ReferenceError
	switch {
	case errors.As(err, &ce):
		return &apiError{status: fiber.StatusConflict, field: ce.Field, msg: ce.Msg}
	case errors.As(err, &re):
		return &apiError{status: fiber.StatusUnprocessableEntity, field: re.Field, msg: re.Msg}
	}
	return err
}

// handleError writes err as JSON. Unexpected errors are logged and
// answered with a generic 500: they may hold details (SQL, hosts) that are
// not the client's business; they never hold secrets, which are not put
// into errors.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var ae *apiError
	var fe *fiber.Error
	body := errorBody{}
	status := fiber.StatusInternalServerError
	switch {
	case errors.As(err, &ae):
		status, body.Error, body.Field = ae.status, ae.msg, ae.field
	case errors.As(err, &fe):
		status, body.Error = fe.Code, fe.Message
	default:
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "error", err)
		body.Error = "internal error; the server log has details"
	}
	return c.Status(status).JSON(body)
}
