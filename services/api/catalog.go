package api

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
)

// What the console (and any client) needs to build forms: the config
// fields of each destination type, a destination config checked without
// storing it, and the tables of a source with how their rows are
// identified.

type fieldView struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Required bool     `json:"required"`
	Secret   bool     `json:"secret"`
	Default  any      `json:"default"`
	OneOf    []string `json:"one_of"`
	Doc      string   `json:"description"`
}

type destinationTypeView struct {
	Type   string      `json:"type"`
	Fields []fieldView `json:"fields"`
}

// listDestinationTypes answers GET /destination-types: each type's config
// fields as POST /destinations checks them.
func (s *Server) listDestinationTypes(c *fiber.Ctx) error {
	items := make([]destinationTypeView, 0, len(s.cfg.DestinationTypes))
	for _, typ := range s.cfg.DestinationTypes {
		v := destinationTypeView{Type: typ.Name}
		for _, f := range typ.Fields {
			oneOf := f.OneOf
			if oneOf == nil {
				oneOf = []string{}
			}
			v.Fields = append(v.Fields, fieldView{Name: f.Name, Kind: f.Kind.String(), Required: f.Required, Secret: f.Secret, Default: f.Default, OneOf: oneOf, Doc: f.Doc})
		}
		items = append(items, v)
	}
	return c.JSON(fiber.Map{"items": items})
}

// configCheckResult is the answer of POST /destinations/check when the config
// works. Checked says how far the check went: "connected" when Rosetta
// logged in to the destination, "config" when only the fields were checked
// (a type without a connection check, such as duckdb, whose file the sink
// opens on its own host).
type configCheckResult struct {
	OK      bool   `json:"ok"`
	Checked string `json:"checked"`
}

// checkDestinationConfig answers POST /destinations/check: the body of a
// POST /destinations, checked as POST checks it, without storing anything.
// A problem is the same 422 (with its field) POST would answer.
func (s *Server) checkDestinationConfig(c *fiber.Ctx) error {
	var req destinationRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	in, err := req.input(s.cfg.DestinationTypes, nil)
	if err != nil {
		return err
	}
	if err := s.confinePaths(&in); err != nil {
		return err
	}
	if err := s.confineLinkSecurity(&in, nil); err != nil {
		return err
	}
	if err := s.checkDestination(c.UserContext(), in, s.destinationSecrets(in, nil)); err != nil {
		return err
	}
	if err := s.runChecker(c.UserContext(), in, s.destinationSecrets(in, nil)); err != nil {
		return err
	}
	checked := "config"
	if in.Type == "postgres" || s.cfg.DestinationCheckers[in.Type] != nil {
		checked = "connected"
	}
	return c.JSON(configCheckResult{OK: true, Checked: checked})
}

type sourceTableView struct {
	Table           string   `json:"table"`
	ReplicaIdentity string   `json:"replica_identity"`
	PrimaryKey      []string `json:"primary_key"`
	IdentityColumns []string `json:"identity_columns"`
	OK              bool     `json:"ok"`
	Problem         string   `json:"problem"`
}

// listSourceTables answers GET /sources/{id}/tables: the source's tables,
// each with its key or replica identity and, when a pipeline could not
// replicate it, what to fix.
func (s *Server) listSourceTables(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	src, err := s.store.SourceWithSecrets(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("source %d does not exist", id)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.CheckTimeout)
	defer cancel()
	e := pgcatalog.Endpoint{Host: src.Host, Port: src.Port, Database: src.Database, User: src.User, Password: src.Password, Security: src.Security()}
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		var p *pgcatalog.Problem
		if errors.As(err, &p) {
			return &apiError{status: fiber.StatusUnprocessableEntity, msg: "source " + src.Name + " cannot be reached to list its tables: " + p.Msg}
		}
		return checkError(err, "", "", src.Password)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := pgcatalog.ListTables(ctx, conn)
	if err != nil {
		return checkError(err, "", "", src.Password)
	}
	items := make([]sourceTableView, len(tables))
	for i, t := range tables {
		items[i] = sourceTableView{Table: t.Table.String(), ReplicaIdentity: t.ReplicaIdentity, PrimaryKey: nonNil(t.PrimaryKey),
			IdentityColumns: nonNil(t.IdentityColumns), OK: t.Problem == "", Problem: t.Problem}
	}
	return c.JSON(fiber.Map{"items": items})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
