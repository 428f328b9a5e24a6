package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/pglink"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// destinationRequest is the body of POST and PUT /destinations.
type destinationRequest struct {
	Name *string `json:"name"`
	Type *string `json:"type"`
	// Config is checked field by field against the type's fields.
	Config map[string]json.RawMessage `json:"config"`
}

// destinationView shows a destination without its secret fields; for
// each secret field its type has, <field>_set says whether it is stored.
type destinationView struct {
	ID                      int64          `json:"id"`
	Name                    string         `json:"name"`
	Type                    string         `json:"type"`
	Config                  map[string]any `json:"config"`
	PasswordSet             *bool          `json:"password_set,omitempty"`
	PrivateKeySet           *bool          `json:"private_key_set,omitempty"`
	PrivateKeyPassphraseSet *bool          `json:"private_key_passphrase_set,omitempty"`
	SSLKeySet               *bool          `json:"sslkey_set,omitempty"`
	CreatedAt               time.Time      `json:"created_at"`
	UpdatedAt               time.Time      `json:"updated_at"`
}

func (s *Server) viewDestination(d configstore.Destination) destinationView {
	v := destinationView{ID: d.ID, Name: d.Name, Type: d.Type, Config: map[string]any{}, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	for k, val := range d.Config {
		// The store never keeps secrets in Config; this guards the view
		// against a future mistake.
		if !configstore.IsSecretField(k) {
			v.Config[k] = val
		}
	}
	set := map[string]bool{}
	for _, k := range d.SecretKeys {
		set[k] = true
	}
	for _, f := range s.cfg.DestinationTypes.Fields(d.Type) {
		if !f.Secret {
			continue
		}
		b := set[f.Name]
		switch f.Name {
		case "password":
			v.PasswordSet = &b
		case "private_key":
			v.PrivateKeySet = &b
		case "private_key_passphrase":
			v.PrivateKeyPassphraseSet = &b
		case "sslkey":
			v.SSLKeySet = &b
		}
	}
	return v
}

// input validates a request against the fields of its type among types.
// stored names the secret fields already stored (on PUT), which count as
// present.
func (r destinationRequest) input(types desttype.Types, stored []string) (configstore.DestinationInput, error) {
	var in configstore.DestinationInput
	var err error
	if in.Name, err = requiredString("name", r.Name, maxNameLen); err != nil {
		return in, err
	}
	if r.Type == nil {
		return in, invalid("type", "type is required: one of %s", types.Names())
	}
	in.Type = *r.Type
	typ, ok := types.Lookup(in.Type)
	if !ok {
		return in, invalid("type", "type %q is not supported: use %s", in.Type, types.Names())
	}
	specs := typ.Fields
	if r.Config == nil {
		return in, invalid("config", "config is required: an object with the %s settings", in.Type)
	}
	known := map[string]desttype.Field{}
	for _, f := range specs {
		known[f.Name] = f
	}
	// Unknown fields first, in a stable order.
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := known[k]; !ok {
			names := make([]string, len(specs))
			for i, f := range specs {
				names[i] = f.Name
			}
			return in, badRequest("config."+k, "unknown field config.%s for a %s destination: it accepts %s", k, in.Type, strings.Join(names, ", "))
		}
	}
	storedSet := map[string]bool{}
	for _, k := range stored {
		storedSet[k] = true
	}
	in.Config = map[string]any{}
	for _, f := range specs {
		path := "config." + f.Name
		raw, present := r.Config[f.Name]
		if present && bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			present = false
		}
		if !present {
			switch {
			case f.Secret:
				// Omitted: the stored value (if any) is kept.
			case f.Required:
				return in, invalid(path, "%s is required for a %s destination", path, in.Type)
			case f.Default != nil:
				in.Config[f.Name] = f.Default
			}
			continue
		}
		v, err := decodeField(path, f, raw)
		if err != nil {
			return in, err
		}
		if f.Secret {
			in.Config[f.Name] = v // "" removes the stored value
			continue
		}
		if s, ok := v.(string); ok && s == "" {
			if f.Required {
				return in, invalid(path, "%s must not be empty", path)
			}
			if f.Default != nil {
				in.Config[f.Name] = f.Default
			}
			continue
		}
		in.Config[f.Name] = v
	}
	// A secret the type does not have (left from a former type) is removed.
	for _, k := range stored {
		if f, ok := known[k]; !ok || !f.Secret {
			in.Config[k] = ""
		}
	}
	if typ.Validate != nil {
		if err := typ.Validate(in.Config, func(name string) bool { return storedSet[name] }); err != nil {
			return in, configError(err)
		}
	}
	return in, nil
}

// configError is an error of a type's Validate as a 422, naming the
// config field it blames.
func configError(err error) error {
	var fe configFieldError
	if errors.As(err, &fe) && fe.ConfigField() != "" {
		return invalid("config."+fe.ConfigField(), "%s", err.Error())
	}
	return invalid("config", "%s", err.Error())
}

func decodeField(path string, f desttype.Field, raw json.RawMessage) (any, error) {
	switch f.Kind {
	case desttype.Port:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, invalid(path, "%s must be an integer", path)
		}
		if n < 1 || n > 65535 {
			return nil, invalid(path, "%s must be from 1 to 65535", path)
		}
		return n, nil
	case desttype.BatchSize:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, invalid(path, "%s must be an integer", path)
		}
		if n < 1 || n > desttype.MaxBatchSize {
			return nil, invalid(path, "%s must be from 1 to %d", path, desttype.MaxBatchSize)
		}
		return n, nil
	case desttype.Bool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, invalid(path, "%s must be true or false", path)
		}
		return b, nil
	case desttype.Duration:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid(path, "%s must be a duration string such as \"1s\" or \"500ms\"", path)
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, invalid(path, "%s must be a duration string such as \"1s\" or \"500ms\", not %q", path, s)
		}
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, invalid(path, "%s must be a string", path)
	}
	max := 1024
	if f.Secret || f.PEM {
		max = maxPEMLen
	}
	if len(s) > max {
		return nil, invalid(path, "%s is too long: at most %d bytes", path, max)
	}
	if len(f.OneOf) > 0 && s != "" {
		ok := false
		for _, o := range f.OneOf {
			ok = ok || s == o
		}
		if !ok {
			return nil, invalid(path, "%s must be one of %s", path, strings.Join(f.OneOf, ", "))
		}
	}
	return s, nil
}

// checkDestination connects to a postgres destination. Other types are
// checked by their DestinationChecker, if one is configured (runChecker);
// without one, their drivers report problems through the pipeline's
// destination health.
func (s *Server) checkDestination(ctx context.Context, in configstore.DestinationInput, secrets map[string]string) error {
	if in.Type != "postgres" {
		return nil
	}
	str := func(k string) string { v, _ := in.Config[k].(string); return v }
	port, _ := in.Config["port"].(int)
	password := secrets["password"]
	e := pgcatalog.Endpoint{Host: str("host"), Port: port, Database: str("database"), User: str("user"), Password: password,
		Security: destinationSecurity(in.Config, secrets)}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		return checkError(err, "config.", "", password)
	}
	conn.Close(context.WithoutCancel(ctx))
	return nil
}

func (s *Server) createDestination(c *fiber.Ctx) error {
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
	d, err := s.store.CreateDestination(c.UserContext(), in)
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindDestination, d.ID, contracts.ActionCreated)
	c.Location("/api/v1/destinations/" + strconv.FormatInt(d.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(s.viewDestination(d))
}

func (s *Server) listDestinations(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	ds, total, err := s.store.ListDestinations(c.UserContext(), p)
	if err != nil {
		return err
	}
	items := make([]destinationView, len(ds))
	for i, d := range ds {
		items[i] = s.viewDestination(d)
	}
	return c.JSON(listBody[destinationView]{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset})
}

func (s *Server) getDestination(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	d, err := s.store.GetDestination(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("destination %d does not exist", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(s.viewDestination(d))
}

func (s *Server) updateDestination(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req destinationRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	old, err := s.store.DestinationWithSecrets(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("destination %d does not exist", id)
	}
	if err != nil {
		return err
	}
	in, err := req.input(s.cfg.DestinationTypes, old.SecretKeys)
	if err != nil {
		return err
	}
	if err := s.confinePaths(&in); err != nil {
		return err
	}
	if err := s.confineLinkSecurity(&in, old.Secrets); err != nil {
		return err
	}
	if err := secretsStayBound(s.cfg.DestinationTypes, old, in); err != nil {
		return err
	}
	secrets := s.destinationSecrets(in, old.Secrets)
	if in.Type == "postgres" && (old.Type != in.Type || secrets["password"] != old.Secrets["password"] ||
		secrets["sslkey"] != old.Secrets["sslkey"] || connectionChanged(old.Config, in.Config)) {
		if err := s.checkDestination(c.UserContext(), in, secrets); err != nil {
			return err
		}
	}
	if s.destinationChanged(old, in, secrets) {
		if err := s.runChecker(c.UserContext(), in, secrets); err != nil {
			return err
		}
	}
	d, err := s.store.UpdateDestination(c.UserContext(), id, in)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("destination %d does not exist", id)
	}
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindDestination, d.ID, contracts.ActionUpdated)
	return c.JSON(s.viewDestination(d))
}

// linkFields are the settings that decide which server a postgres
// destination's secrets may be sent to: changing one needs them again.
var linkFields = []string{"sslmode", "sslrootcert", "require_auth", "channel_binding"}

// destinationSecurity is a postgres destination's link settings from its
// config and secrets.
func destinationSecurity(cfg map[string]any, secrets map[string]string) pglink.Security {
	str := func(k string) string { v, _ := cfg[k].(string); return v }
	return pglink.Security{SSLMode: str("sslmode"), RootCert: str("sslrootcert"), ClientCert: str("sslcert"),
		ClientKey: secrets["sslkey"], RequireAuth: str("require_auth"), ChannelBinding: str("channel_binding")}
}

// confineLinkSecurity validates a postgres destination's TLS settings and
// stores their paths resolved (see checkLinkSecurity).
func (s *Server) confineLinkSecurity(in *configstore.DestinationInput, stored map[string]string) error {
	if in.Type != "postgres" {
		return nil
	}
	sec, err := s.checkLinkSecurity("config.", destinationSecurity(in.Config, s.destinationSecrets(*in, stored)))
	if err != nil {
		return err
	}
	for k, v := range map[string]string{"sslrootcert": sec.RootCert, "sslcert": sec.ClientCert} {
		if _, ok := in.Config[k]; ok {
			in.Config[k] = v
		}
	}
	if _, ok := in.Config["sslkey"]; ok {
		in.Config["sslkey"] = sec.ClientKey
	}
	return nil
}

// secretsStayBound refuses an update that moves a destination (a bound
// field or the type changes) while keeping a stored secret: the secret
// must be sent again, or a new host would receive it.
func secretsStayBound(types desttype.Types, old configstore.Destination, in configstore.DestinationInput) error {
	for _, k := range old.SecretKeys {
		if _, given := in.Config[k]; given {
			continue
		}
		if in.Type != old.Type {
			return invalid("config."+k, "type changed: send config.%s again (a stored secret is only used where it was given)", k)
		}
		for _, f := range types.Fields(old.Type) {
			if f.Bound && fmt.Sprint(old.Config[f.Name]) != fmt.Sprint(in.Config[f.Name]) {
				return invalid("config."+k, "config.%s changed: send config.%s again (a stored secret is only used where it was given)", f.Name, k)
			}
		}
	}
	return nil
}

// connectionChanged reports whether a postgres destination's connection
// settings differ (stored numbers come back from jsonb as float64).
func connectionChanged(old, new map[string]any) bool {
	for _, k := range append([]string{"host", "port", "database", "user", "sslcert"}, linkFields...) {
		if fmt.Sprint(old[k]) != fmt.Sprint(new[k]) {
			return true
		}
	}
	return false
}

func (s *Server) deleteDestination(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	err = s.store.DeleteDestination(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("destination %d does not exist", id)
	}
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindDestination, id, contracts.ActionDeleted)
	return c.SendStatus(fiber.StatusNoContent)
}
