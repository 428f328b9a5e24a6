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

func viewDestination(d configstore.Destination) destinationView {
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
	for _, f := range destinationFields(d.Type) {
		if !f.secret {
			continue
		}
		b := set[f.name]
		switch f.name {
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

type fieldKind int

const (
	kindString fieldKind = iota
	kindPort
	kindDuration // a Go duration string such as "1s" or "500ms", >= 0
	kindBool
	kindBatchSize // an integer from 1 to 100000 (the sink's largest batch)
)

// fieldSpec is one config field of a destination type.
type fieldSpec struct {
	name     string
	kind     fieldKind
	required bool
	secret   bool // stored encrypted, never shown (configstore.IsSecretField)
	pem      bool // may hold PEM text (up to maxPEMLen)
	def      any  // stored when the field is omitted; nil for none
	oneOf    []string
	doc      string // what the field means, for GET /destination-types
}

// droppedColumnsDoc explains dropped_columns, which every type has.
const droppedColumnsDoc = "What happens to a destination column whose source column is dropped: keep it (NULL from then on) or drop it."

// destinationTypes lists the accepted types, for messages.
const destinationTypes = "postgres, snowflake or duckdb"

// destinationFields is the config a destination type accepts. Drivers
// decode the stored config (with secrets) into their own typed config.
func destinationFields(typ string) []fieldSpec {
	droppedColumns := []string{"keep", "drop"}
	switch typ {
	case "postgres":
		return []fieldSpec{
			{name: "host", required: true, doc: "Host name or address of the destination PostgreSQL."},
			{name: "port", kind: kindPort, def: 5432},
			{name: "database", required: true},
			{name: "user", required: true},
			{name: "password", secret: true, doc: "Write-only: stored encrypted, never shown."},
			{name: "schema", def: "public", doc: "Schema the tables are written to."},
			{name: "sslmode", def: pglink.DefaultSSLMode, oneOf: pglink.SSLModes, doc: "TLS: verify-full checks the server's certificate and name (use it in production); the default prefer encrypts when the server offers TLS but verifies nothing."},
			{name: "sslrootcert", pem: true, doc: "CA of the server's certificate: PEM text, or a file under ROSETTA_KEYS_DIR; without it the system's CAs."},
			{name: "sslcert", pem: true, doc: "Client certificate (PEM text or a file under ROSETTA_KEYS_DIR) for servers that authenticate by certificate."},
			{name: "sslkey", secret: true, doc: "Write-only key of sslcert: PEM text (stored encrypted, never shown) or a file under ROSETTA_KEYS_DIR."},
			{name: "require_auth", doc: "Authentication methods accepted from the server, e.g. scram-sha-256 (refuses a server asking for a cleartext or MD5 password)."},
			{name: "channel_binding", oneOf: pglink.ChannelBindings, doc: "require binds SCRAM to the TLS channel (needs TLS and scram-sha-256)."},
			// What happens to a column the source drops (docs/types.md).
			{name: "dropped_columns", def: "keep", oneOf: droppedColumns, doc: droppedColumnsDoc},
		}
	case "snowflake":
		return []fieldSpec{
			{name: "account", required: true},
			{name: "user", required: true},
			{name: "database", required: true},
			{name: "schema", required: true},
			{name: "warehouse"},
			{name: "role"},
			{name: "private_key", secret: true, doc: "Write-only PEM text of the private key (key-pair authentication)."},
			{name: "private_key_path", doc: "Path of a PEM private key file on the sink's host, instead of private_key."},
			{name: "private_key_passphrase", secret: true, doc: "Write-only passphrase of an encrypted key."},
			// host, port and protocol override the endpoint derived from
			// account (private link, or a test double).
			{name: "host", doc: "Overrides the host derived from account."},
			{name: "port", kind: kindPort},
			{name: "protocol", oneOf: []string{"https", "http"}},
			// Plain HTTP sends the login token and the staged rows in clear.
			{name: "insecure_http", kind: kindBool, def: false, doc: "Allow protocol http (a test double only): tokens and rows cross the network unencrypted."},
			{name: "tls_ca_file", doc: "PEM file of CA certificates on the sink's host (inside ROSETTA_KEYS_DIR) that the endpoint's certificate must chain to, instead of the system's."},
			// Keep deleted rows with _ROSETTA_DELETED = true (docs/snowflake.md).
			{name: "soft_delete", kind: kindBool, def: false, doc: "Keep deleted rows with _ROSETTA_DELETED = true instead of deleting them."},
			{name: "dropped_columns", def: "keep", oneOf: droppedColumns, doc: droppedColumnsDoc},
			// Warehouse credits follow the number of batches (docs/snowflake.md).
			{name: "flush_interval", kind: kindDuration, doc: "Longest a change waits before its batch is applied (default 60s): " +
				"each batch resumes the warehouse, so a longer interval costs latency and saves credits."},
			{name: "batch_size", kind: kindBatchSize, doc: "Most changes applied in one batch, 1-100000 (default 20000); a full batch is applied at once."},
		}
	case "duckdb":
		return []fieldSpec{
			{name: "path", required: true, doc: "Database file on the sink's host."},
			{name: "schema", def: "main"},
			// How the driver shares the file with readers (docs/duckdb.md).
			{name: "release_after", kind: kindDuration, doc: "Close the file after this long without a batch so readers can open it (default 1s)."},
			{name: "max_hold", kind: kindDuration, doc: "Longest time the file stays open while batches keep arriving (default 30s)."},
			{name: "reader_window", kind: kindDuration, doc: "Pause after a max_hold release before reopening (default 1s)."},
			{name: "lock_timeout", kind: kindDuration, doc: "How long opening the file retries while a reader holds it (default 30s)."},
			{name: "dropped_columns", def: "keep", oneOf: droppedColumns, doc: droppedColumnsDoc},
		}
	}
	return nil
}

// destinationInput validates a request. stored names the secret fields
// already stored (on PUT), which count as present.
func (r destinationRequest) input(stored []string) (configstore.DestinationInput, error) {
	var in configstore.DestinationInput
	var err error
	if in.Name, err = requiredString("name", r.Name, maxNameLen); err != nil {
		return in, err
	}
	if r.Type == nil {
		return in, invalid("type", "type is required: one of %s", destinationTypes)
	}
	in.Type = *r.Type
	specs := destinationFields(in.Type)
	if specs == nil {
		return in, invalid("type", "type %q is not supported: use %s", in.Type, destinationTypes)
	}
	if r.Config == nil {
		return in, invalid("config", "config is required: an object with the %s settings", in.Type)
	}
	known := map[string]fieldSpec{}
	for _, f := range specs {
		known[f.name] = f
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
				names[i] = f.name
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
		path := "config." + f.name
		raw, present := r.Config[f.name]
		if present && bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			present = false
		}
		if !present {
			switch {
			case f.secret:
				// Omitted: the stored value (if any) is kept.
			case f.required:
				return in, invalid(path, "%s is required for a %s destination", path, in.Type)
			case f.def != nil:
				in.Config[f.name] = f.def
			}
			continue
		}
		v, err := decodeField(path, f, raw)
		if err != nil {
			return in, err
		}
		if f.secret {
			in.Config[f.name] = v // "" removes the stored value
			continue
		}
		if s, ok := v.(string); ok && s == "" {
			if f.required {
				return in, invalid(path, "%s must not be empty", path)
			}
			if f.def != nil {
				in.Config[f.name] = f.def
			}
			continue
		}
		in.Config[f.name] = v
	}
	// A secret the type does not have (left from a former type) is removed.
	for _, k := range stored {
		if f, ok := known[k]; !ok || !f.secret {
			in.Config[k] = ""
		}
	}
	if in.Type == "snowflake" {
		key, _ := in.Config["private_key"].(string)
		path, _ := in.Config["private_key_path"].(string)
		_, keySent := in.Config["private_key"]
		hasKey := key != "" || (!keySent && storedSet["private_key"])
		if !hasKey && path == "" {
			return in, invalid("config.private_key", "a snowflake destination needs config.private_key (the PEM text) or config.private_key_path (a file on the sink's host)")
		}
		// Plain HTTP only when asked for by name: it sends the login
		// token and every staged row unencrypted.
		if in.Config["protocol"] == "http" && in.Config["insecure_http"] != true {
			return in, invalid("config.insecure_http", "config.protocol http sends the login token and every staged row unencrypted: "+
				"set config.insecure_http to true to allow it (a test double only), or use https (with config.tls_ca_file for a private CA)")
		}
	}
	return in, nil
}

func decodeField(path string, f fieldSpec, raw json.RawMessage) (any, error) {
	switch f.kind {
	case kindPort:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, invalid(path, "%s must be an integer", path)
		}
		if n < 1 || n > 65535 {
			return nil, invalid(path, "%s must be from 1 to 65535", path)
		}
		return n, nil
	case kindBatchSize:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, invalid(path, "%s must be an integer", path)
		}
		if n < 1 || n > 100000 {
			return nil, invalid(path, "%s must be from 1 to 100000", path)
		}
		return n, nil
	case kindBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, invalid(path, "%s must be true or false", path)
		}
		return b, nil
	case kindDuration:
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
	if f.secret || f.pem {
		max = maxPEMLen
	}
	if len(s) > max {
		return nil, invalid(path, "%s is too long: at most %d bytes", path, max)
	}
	if len(f.oneOf) > 0 && s != "" {
		ok := false
		for _, o := range f.oneOf {
			ok = ok || s == o
		}
		if !ok {
			return nil, invalid(path, "%s must be one of %s", path, strings.Join(f.oneOf, ", "))
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
	in, err := req.input(nil)
	if err != nil {
		return err
	}
	if err := s.confinePaths(&in); err != nil {
		return err
	}
	if err := s.confineLinkSecurity(&in, nil); err != nil {
		return err
	}
	if err := s.checkDestination(c.UserContext(), in, destinationSecrets(in, nil)); err != nil {
		return err
	}
	if err := s.runChecker(c.UserContext(), in, destinationSecrets(in, nil)); err != nil {
		return err
	}
	d, err := s.store.CreateDestination(c.UserContext(), in)
	if err != nil {
		return fromStore(err)
	}
	s.publish(c, contracts.KindDestination, d.ID, contracts.ActionCreated)
	c.Location("/api/v1/destinations/" + strconv.FormatInt(d.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(viewDestination(d))
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
		items[i] = viewDestination(d)
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
	return c.JSON(viewDestination(d))
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
	in, err := req.input(old.SecretKeys)
	if err != nil {
		return err
	}
	if err := s.confinePaths(&in); err != nil {
		return err
	}
	if err := s.confineLinkSecurity(&in, old.Secrets); err != nil {
		return err
	}
	if err := secretsStayBound(old, in); err != nil {
		return err
	}
	secrets := destinationSecrets(in, old.Secrets)
	if in.Type == "postgres" && (old.Type != in.Type || secrets["password"] != old.Secrets["password"] ||
		secrets["sslkey"] != old.Secrets["sslkey"] || connectionChanged(old.Config, in.Config)) {
		if err := s.checkDestination(c.UserContext(), in, secrets); err != nil {
			return err
		}
	}
	if destinationChanged(old, in, secrets) {
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
	return c.JSON(viewDestination(d))
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
	sec, err := s.checkLinkSecurity("config.", destinationSecurity(in.Config, destinationSecrets(*in, stored)))
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

// boundFields are the config fields saying where a destination's stored
// secrets are sent.
var boundFields = map[string][]string{
	"postgres":  append([]string{"host", "port", "database", "user"}, linkFields...),
	"snowflake": {"account", "user", "host", "port", "protocol", "insecure_http", "tls_ca_file"},
}

// secretsStayBound refuses an update that moves a destination (a bound
// field or the type changes) while keeping a stored secret: the secret
// must be sent again, or a new host would receive it.
func secretsStayBound(old configstore.Destination, in configstore.DestinationInput) error {
	for _, k := range old.SecretKeys {
		if _, given := in.Config[k]; given {
			continue
		}
		if in.Type != old.Type {
			return invalid("config."+k, "type changed: send config.%s again (a stored secret is only used where it was given)", k)
		}
		for _, f := range boundFields[old.Type] {
			if fmt.Sprint(old.Config[f]) != fmt.Sprint(in.Config[f]) {
				return invalid("config."+k, "config.%s changed: send config.%s again (a stored secret is only used where it was given)", f, k)
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
