package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
)

// sourceRequest is the body of POST and PUT /sources. Pointers tell an
// omitted field from an empty one.
type sourceRequest struct {
	Name     *string `json:"name"`
	Host     *string `json:"host"`
	Port     *int    `json:"port"`
	Database *string `json:"database"`
	User     *string `json:"user"`
	// Password is write-only. Omitted or null on PUT keeps the stored one;
	// "" removes it.
	Password    *string `json:"password"`
	Publication *string `json:"publication"`
	Slot        *string `json:"slot"`
	SSLMode     *string `json:"sslmode"`
}

// sourceView is a source as the API shows it: no password, only whether
// one is set.
type sourceView struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Host        string    `json:"host"`
	Port        int       `json:"port"`
	Database    string    `json:"database"`
	User        string    `json:"user"`
	PasswordSet bool      `json:"password_set"`
	Publication string    `json:"publication"`
	Slot        string    `json:"slot"`
	SSLMode     string    `json:"sslmode"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewSource(s configstore.Source) sourceView {
	return sourceView{ID: s.ID, Name: s.Name, Host: s.Host, Port: s.Port, Database: s.Database, User: s.User,
		PasswordSet: s.PasswordSet, Publication: s.Publication, Slot: s.Slot, SSLMode: s.SSLMode,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

func (r sourceRequest) input() (configstore.SourceInput, error) {
	var in configstore.SourceInput
	var err error
	if in.Name, err = requiredString("name", r.Name, maxNameLen); err != nil {
		return in, err
	}
	if in.Host, err = requiredString("host", r.Host, maxHostLen); err != nil {
		return in, err
	}
	if in.Port, err = validPort("port", r.Port); err != nil {
		return in, err
	}
	if in.Database, err = requiredString("database", r.Database, maxIdentLen); err != nil {
		return in, err
	}
	if in.User, err = requiredString("user", r.User, maxIdentLen); err != nil {
		return in, err
	}
	if r.Password != nil && len(*r.Password) > 1024 {
		return in, invalid("password", "password is too long: at most 1024 bytes")
	}
	in.Password = r.Password
	if r.Publication != nil {
		if in.Publication, err = optionalString("publication", *r.Publication, maxIdentLen, false); err != nil {
			return in, err
		}
	}
	if r.Slot != nil && *r.Slot != "" {
		if !slotName.MatchString(*r.Slot) {
			return in, invalid("slot", "slot must be 1 to 63 lower-case letters, digits or underscores (PostgreSQL's rule for slot names)")
		}
		in.Slot = *r.Slot
	}
	if in.SSLMode, err = validSSLMode("sslmode", r.SSLMode); err != nil {
		return in, err
	}
	return in, nil
}

// checkSource connects to the source and checks it can be captured from.
func (s *Server) checkSource(ctx context.Context, e pgcatalog.Endpoint, field string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		return checkError(err, "", field, e.Password)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pgcatalog.CheckSource(ctx, conn); err != nil {
		return checkError(err, "", field, e.Password)
	}
	return nil
}

// checkError turns a failed check into a 422; a failure that is not a
// pgcatalog.Problem (a query failed) is reported with the password
// scrubbed.
func checkError(err error, prefix, field, password string) error {
	var p *pgcatalog.Problem
	if errors.As(err, &p) {
		return fromProblem(p, prefix, field)
	}
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "********")
	}
	return invalid(field, "could not check the database: %s", msg)
}

func endpointOf(in configstore.SourceInput, password string) pgcatalog.Endpoint {
	return pgcatalog.Endpoint{Host: in.Host, Port: in.Port, Database: in.Database, User: in.User, Password: password, SSLMode: in.SSLMode}
}

func (s *Server) createSource(c *fiber.Ctx) error {
	var req sourceRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	pw := ""
	if in.Password != nil {
		pw = *in.Password
	}
	if err := s.checkSource(c.UserContext(), endpointOf(in, pw), ""); err != nil {
		return err
	}
	src, err := s.store.CreateSource(c.UserContext(), in)
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindSource, src.ID, contracts.ActionCreated)
	c.Location("/api/v1/sources/" + strconv.FormatInt(src.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(viewSource(src))
}

func (s *Server) listSources(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	srcs, total, err := s.store.ListSources(c.UserContext(), p)
	if err != nil {
		return err
	}
	items := make([]sourceView, len(srcs))
	for i, src := range srcs {
		items[i] = viewSource(src)
	}
	return c.JSON(listBody[sourceView]{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset})
}

func (s *Server) getSource(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	src, err := s.store.GetSource(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("source %d does not exist", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(viewSource(src))
}

func (s *Server) updateSource(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req sourceRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	old, err := s.store.SourceWithSecrets(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("source %d does not exist", id)
	}
	if err != nil {
		return err
	}
	pw := old.Password
	if in.Password != nil {
		pw = *in.Password
	}
	sslmode := old.SSLMode
	if in.SSLMode != "" {
		sslmode = in.SSLMode
	}
	// The stored password goes only where it was given: moving the source
	// needs it again, or a new host would receive it.
	if in.Password == nil && old.Password != "" {
		for _, f := range []struct {
			name  string
			moved bool
		}{{"host", in.Host != old.Host}, {"port", in.Port != old.Port}, {"database", in.Database != old.Database},
			{"user", in.User != old.User}, {"sslmode", sslmode != old.SSLMode}} {
			if f.moved {
				return invalid("password", "%s changed: send the password again (a stored password is only used where it was given)", f.name)
			}
		}
	}
	// Only a change of where or how to connect is checked again, so a
	// source that is down can still be renamed.
	if in.Host != old.Host || in.Port != old.Port || in.Database != old.Database || in.User != old.User ||
		pw != old.Password || sslmode != old.SSLMode {
		e := endpointOf(in, pw)
		e.SSLMode = sslmode
		if err := s.checkSource(c.UserContext(), e, ""); err != nil {
			return err
		}
	}
	src, err := s.store.UpdateSource(c.UserContext(), id, in)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("source %d does not exist", id)
	}
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindSource, src.ID, contracts.ActionUpdated)
	return c.JSON(viewSource(src))
}

func (s *Server) deleteSource(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	err = s.store.DeleteSource(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("source %d does not exist", id)
	}
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindSource, id, contracts.ActionDeleted)
	return c.SendStatus(fiber.StatusNoContent)
}
