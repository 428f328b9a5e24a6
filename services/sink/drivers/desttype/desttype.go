// Package desttype describes a destination type once: its name, the config
// fields the API accepts (which are secret, their defaults and allowed
// values), what spans fields, the check the API runs before it stores a
// destination, the live check, and the factory the sink opens the driver
// with. Each driver package exports its description next to its config
// parsing (postgres.Type, duckdb.Type, snowflake.Type); the composition
// root lists them (services/sink/drivers/builtin) and hands the list to the
// API and the sink, so adding a destination type is one driver folder, one
// line in that list and its config schema in contracts/openapi.yaml (a test
// in services/api fails while the schema and the type disagree).
//
// The package holds descriptions only: it imports no driver and no
// service, so the API can depend on it without the drivers.
package desttype

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/destcheck"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// Kind is how a config field's JSON value is read and checked.
type Kind int

// The kinds of config fields.
const (
	String   Kind = iota
	Port          // an integer from 1 to 65535
	Duration      // a Go duration string such as "1s" or "500ms", >= 0
	Bool
	BatchSize // an integer from 1 to MaxBatchSize (the sink's largest batch)
)

// MaxBatchSize is the largest value of a BatchSize field.
const MaxBatchSize = 100000

// String is the kind's name in GET /destination-types.
func (k Kind) String() string {
	switch k {
	case Port:
		return "port"
	case Duration:
		return "duration"
	case Bool:
		return "bool"
	case BatchSize:
		return "batch_size"
	}
	return "string"
}

// Field is one config field of a destination type, as the API checks it
// and contracts/openapi.yaml states it (a test keeps the two equal).
type Field struct {
	Name     string
	Kind     Kind
	Required bool
	// Secret fields are stored encrypted and never shown
	// (configstore.IsSecretField); openapi.yaml marks them writeOnly.
	Secret bool
	// PEM fields may hold PEM text, so they may be as long as a secret.
	PEM bool
	// Default is stored when the field is omitted; nil for none. It is the
	// driver's own default value, not a copy of it.
	Default any
	// OneOf are the accepted values of a String field; nil accepts any.
	OneOf []string
	// Doc says what the field means, for GET /destination-types.
	Doc string
	// Bound fields say where the type's stored secrets are sent: an
	// update that changes one must send the secrets again.
	Bound bool
}

// Factory builds the driver of one destination from its JSON config
// (configstore.Destination.ConfigWithSecrets). It should not connect: a
// destination that is down is reported by the runner's failing Apply, with
// retries. Its errors are reported as the destination's health, so they
// must not contain secrets.
type Factory func(ctx context.Context, config json.RawMessage, log *slog.Logger) (sinkrunner.Driver, error)

// CheckFunc checks that a destination's config works (logs in, runs a
// trivial query) before the API stores it; config is the JSON a driver
// receives, secrets included, and the check must return within ctx. An
// error with a ConfigField() string method names the config field at
// fault; messages say what to fix and hold no secrets.
type CheckFunc func(ctx context.Context, config json.RawMessage) error

// LiveCheckFunc checks a stored destination live, step by step (a round
// trip of every type); config is as for CheckFunc.
type LiveCheckFunc func(ctx context.Context, config json.RawMessage, log *slog.Logger) destcheck.Report

// Type describes one destination type.
type Type struct {
	// Name is the type's name in the API and the config DB ("postgres").
	Name   string
	Fields []Field
	// Validate checks what spans fields, after each field passed its own
	// check: config is the request's fields with defaults applied (a
	// secret present only when sent, "" removing it), storedSecret tells
	// whether a secret not sent is kept from before. A *ConfigError names
	// the field at fault. Nil checks nothing more.
	Validate func(config map[string]any, storedSecret func(name string) bool) error
	// Check, when set, is run by the API on a new or changed destination.
	Check CheckFunc
	// LiveCheck, when set, serves the API's and the CLI's live check.
	LiveCheck LiveCheckFunc
	// Open builds the sink's driver of a destination of this type.
	Open Factory
}

// Types are the destination types of a build, in the order the API lists
// them.
type Types []Type

// Lookup returns the type named name.
func (ts Types) Lookup(name string) (Type, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return Type{}, false
}

// Fields returns the config fields of the type named name; nil when there
// is no such type.
func (ts Types) Fields(name string) []Field {
	t, _ := ts.Lookup(name)
	return t.Fields
}

// Names lists the types for messages: "postgres, snowflake or duckdb".
func (ts Types) Names() string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ConfigError is a config that Validate refuses; Field names the config
// field to fix ("private_key") and the message says how.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return e.Msg }

// ConfigField is Field, for callers that classify errors by a small
// interface (services/api).
func (e *ConfigError) ConfigField() string { return e.Field }

// DroppedColumns is the dropped_columns field every type has: what happens
// to a destination column whose source column is dropped (docs/types.md).
// def is the driver's default policy.
func DroppedColumns(def string) Field {
	return Field{Name: "dropped_columns", Default: def, OneOf: []string{colmark.DroppedKeep, colmark.DroppedDrop},
		Doc: "What happens to a destination column whose source column is dropped: keep it (NULL from then on) or drop it."}
}

// Seconds writes a default duration for a field's Doc as the API and the
// docs state it ("60s", not time.Duration's "1m0s").
func Seconds(d time.Duration) string {
	if d%time.Second != 0 {
		return d.String()
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
