package api

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/pglink"
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
	// AdoptSlot and AdoptPublication hand Rosetta a slot or publication
	// someone else created (omitted on PUT: unchanged).
	AdoptSlot        *bool `json:"adopt_slot"`
	AdoptPublication *bool `json:"adopt_publication"`
	// TLS and authentication (pglink.Security); omitted on PUT keeps the
	// stored value, "" clears it. SSLKey is write-only like Password.
	SSLRootCert    *string `json:"sslrootcert"`
	SSLCert        *string `json:"sslcert"`
	SSLKey         *string `json:"sslkey"`
	RequireAuth    *string `json:"require_auth"`
	ChannelBinding *string `json:"channel_binding"`
	// Partitions spreads the source's changes over that many partitions
	// by a hash of their key (1 to 64; omitted: 1 on POST, unchanged on
	// PUT). A change is refused (409) while the source has pipelines.
	Partitions *int `json:"partitions"`
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
	AdoptSlot   bool      `json:"adopt_slot"`
	AdoptPub    bool      `json:"adopt_publication"`
	SSLRootCert string    `json:"sslrootcert"`
	SSLCert     string    `json:"sslcert"`
	SSLKeySet   bool      `json:"sslkey_set"`
	RequireAuth string    `json:"require_auth"`
	ChannelBind string    `json:"channel_binding"`
	Partitions  int       `json:"partitions"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewSource(s configstore.Source) sourceView {
	return sourceView{ID: s.ID, Name: s.Name, Host: s.Host, Port: s.Port, Database: s.Database, User: s.User,
		PasswordSet: s.PasswordSet, Publication: s.Publication, Slot: s.Slot, SSLMode: s.SSLMode,
		AdoptSlot: s.AdoptSlot, AdoptPub: s.AdoptPublication,
		SSLRootCert: s.SSLRootCert, SSLCert: s.SSLCert, SSLKeySet: s.SSLKeySet, RequireAuth: s.RequireAuth, ChannelBind: s.ChannelBinding,
		Partitions: s.Partitions, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
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
	in.AdoptSlot, in.AdoptPublication = r.AdoptSlot, r.AdoptPublication
	in.SSLRootCert, in.SSLCert, in.SSLKey, in.RequireAuth, in.ChannelBinding = r.SSLRootCert, r.SSLCert, r.SSLKey, r.RequireAuth, r.ChannelBinding
	if r.Partitions != nil && (*r.Partitions < contracts.MinPartitions || *r.Partitions > contracts.MaxPartitions) {
		return in, invalid("partitions", "partitions must be from %d to %d (the number of partitions the source's changes are spread over by key)",
			contracts.MinPartitions, contracts.MaxPartitions)
	}
	in.Partitions = r.Partitions
	return in, nil
}

// security is the source's link settings after in: old's where in keeps
// them (nil), in's otherwise.
func security(in configstore.SourceInput, old configstore.Source) pglink.Security {
	or := func(v *string, def string) string {
		if v == nil {
			return def
		}
		return *v
	}
	return pglink.Security{SSLMode: cmp.Or(in.SSLMode, old.SSLMode), RootCert: or(in.SSLRootCert, old.SSLRootCert),
		ClientCert: or(in.SSLCert, old.SSLCert), ClientKey: or(in.SSLKey, old.SSLKey),
		RequireAuth: or(in.RequireAuth, old.RequireAuth), ChannelBinding: or(in.ChannelBinding, old.ChannelBinding)}
}

// confineSecurity checks sec and writes its resolved paths back into in
// (only the fields in sets), so the stored paths are the ones checked.
func (s *Server) confineSecurity(in *configstore.SourceInput, sec pglink.Security) (pglink.Security, error) {
	sec, err := s.checkLinkSecurity("", sec)
	if err != nil {
		return sec, err
	}
	if in.SSLRootCert != nil {
		in.SSLRootCert = &sec.RootCert
	}
	if in.SSLCert != nil {
		in.SSLCert = &sec.ClientCert
	}
	if in.SSLKey != nil {
		in.SSLKey = &sec.ClientKey
	}
	return sec, nil
}

// checkSource connects to the source and checks it can be captured from,
// and, when rc asks, its slot and publication.
func (s *Server) checkSource(ctx context.Context, e pgcatalog.Endpoint, field string, rc *replCheck) error {
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
	if rc.needed() {
		return checkReplication(ctx, conn, rc)
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
	return invalid(field, "could not check the database: %s", scrubbed(err, password))
}

func endpointOf(in configstore.SourceInput, password string, sec pglink.Security) pgcatalog.Endpoint {
	return pgcatalog.Endpoint{Host: in.Host, Port: in.Port, Database: in.Database, User: in.User, Password: password, Security: sec}
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
	rc := &replCheck{slot: in.Slot, pub: in.Publication, adoptSlot: deref(in.AdoptSlot), adoptPub: deref(in.AdoptPublication)}
	if rc.adoptSlot && in.Slot == "" {
		return invalid("slot", "adopt_slot needs slot: the name of the replication slot to adopt")
	}
	if rc.adoptPub && in.Publication == "" {
		return invalid("publication", "adopt_publication needs publication: the name of the publication to adopt")
	}
	// A derived name is new; a given one may be someone else's.
	rc.checkSlot, rc.checkPub = in.Slot != "", in.Publication != ""
	sec, err := s.confineSecurity(&in, security(in, configstore.Source{}))
	if err != nil {
		return err
	}
	if err := s.checkSource(c.UserContext(), endpointOf(in, pw, sec), "", rc); err != nil {
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
	sec, err := s.confineSecurity(&in, security(in, old))
	if err != nil {
		return err
	}
	oldSec := old.Security()
	// The stored password and key go only where they were given: moving
	// the source, or changing what proves the server is the one they were
	// given for, needs them again, or another host would receive them.
	for _, secret := range []struct {
		name        string
		stored, put bool
	}{{"password", old.Password != "", in.Password != nil}, {"sslkey", old.SSLKey != "", in.SSLKey != nil}} {
		if !secret.stored || secret.put {
			continue
		}
		for _, f := range []struct {
			name  string
			moved bool
		}{{"host", in.Host != old.Host}, {"port", in.Port != old.Port}, {"database", in.Database != old.Database},
			{"user", in.User != old.User}, {"sslmode", sec.SSLMode != oldSec.SSLMode}, {"sslrootcert", sec.RootCert != oldSec.RootCert},
			{"require_auth", sec.RequireAuth != oldSec.RequireAuth}, {"channel_binding", sec.ChannelBinding != oldSec.ChannelBinding}} {
			if f.moved {
				return invalid(secret.name, "%s changed: send the %s again (a stored %s is only used where it was given)", f.name, secret.name, secret.name)
			}
		}
	}
	moved := in.Host != old.Host || in.Port != old.Port || in.Database != old.Database
	rc := &replCheck{slot: cmp.Or(in.Slot, old.Slot), pub: cmp.Or(in.Publication, old.Publication),
		adoptSlot: derefOr(in.AdoptSlot, old.AdoptSlot), adoptPub: derefOr(in.AdoptPublication, old.AdoptPublication)}
	rc.checkSlot = moved || rc.slot != old.Slot || (rc.adoptSlot && !old.AdoptSlot)
	rc.checkPub = moved || rc.pub != old.Publication || (rc.adoptPub && !old.AdoptPublication)
	// Only a change of where or how to connect, or of the slot or
	// publication, is checked again, so a source that is down can still
	// be renamed.
	if moved || in.User != old.User || pw != old.Password || sec != oldSec || rc.needed() {
		e := endpointOf(in, pw, sec)
		if err := s.checkSource(c.UserContext(), e, "", rc); err != nil {
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
	// A renamed slot or publication Rosetta created would otherwise stay
	// on the source for good, the slot holding WAL: drop the old one.
	if !moved {
		oldSlot, oldPub := managed(old)
		if oldSlot == src.Slot {
			oldSlot = ""
		}
		if oldPub == src.Publication {
			oldPub = ""
		}
		if oldSlot != "" || oldPub != "" {
			e := endpointOf(in, pw, sec)
			if err := s.dropReplication(c.UserContext(), e, oldSlot, oldPub); err != nil {
				s.log.Warn("source updated but its former slot or publication was not dropped",
					"source", id, "error", scrubbed(err, pw), "drop_sql", dropSQL(oldSlot, oldPub))
			}
		}
	}
	return c.JSON(viewSource(src))
}

func deref(b *bool) bool { return b != nil && *b }

func derefOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
