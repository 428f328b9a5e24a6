package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// DestinationChecker checks that a destination's config works (logs in,
// runs a trivial query) before POST or PUT /destinations stores it. config
// is the JSON a sink driver receives (configstore.Destination
// ConfigWithSecrets), secrets included. Check must return within ctx.
//
// An error that has a ConfigField() string method names the config field
// at fault ("private_key"); the API answers 422 with that field as
// "config.<field>" and the error's message, which must say what to fix and
// must not contain secrets (the API also masks the request's secret values
// in it). Any other error is a 422 without a field.
type DestinationChecker interface {
	Check(ctx context.Context, config json.RawMessage) error
}

// DestinationCheckFunc adapts a function to DestinationChecker.
type DestinationCheckFunc func(ctx context.Context, config json.RawMessage) error

// Check calls f.
func (f DestinationCheckFunc) Check(ctx context.Context, config json.RawMessage) error {
	return f(ctx, config)
}

// DestinationCheckers are the checkers by destination type. The API has
// no built-in knowledge of drivers: NewFromParams takes them from the
// destination types' Check (desttype.Type), which the composition root
// provides (services/rosetta). A type without a checker gets the shape
// checks only; postgres destinations are always checked by the API itself.
type DestinationCheckers map[string]DestinationChecker

// checkersOf is the checkers of the types that have a Check.
func checkersOf(types desttype.Types) DestinationCheckers {
	out := DestinationCheckers{}
	for _, t := range types {
		if t.Check != nil {
			out[t.Name] = DestinationCheckFunc(t.Check)
		}
	}
	return out
}

// configFieldError is the error shape a checker uses to blame one field.
type configFieldError interface {
	error
	ConfigField() string
}

// runChecker checks a destination with the checker registered for its
// type, if any. secrets are the secret values the config holds, masked in
// case a message repeats one.
func (s *Server) runChecker(ctx context.Context, in configstore.DestinationInput, secrets map[string]string) error {
	checker := s.cfg.DestinationCheckers[in.Type]
	if checker == nil {
		return nil
	}
	config := make(map[string]any, len(in.Config)+len(secrets))
	for k, v := range in.Config {
		config[k] = v
	}
	for k, v := range secrets {
		config[k] = v
	}
	for k, v := range config {
		if v == "" {
			delete(config, k) // "" removes a stored secret, or is an unset field
		}
	}
	raw, err := json.Marshal(config)
	if err != nil {
		return fmt.Errorf("encode %s destination config for its check: %w", in.Type, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	err = checker.Check(ctx, raw)
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, v := range secrets {
		if len(v) >= 4 { // masking shorter values would garble the message
			msg = strings.ReplaceAll(msg, v, "********")
		}
	}
	field := ""
	var fe configFieldError
	if errors.As(err, &fe) && fe.ConfigField() != "" {
		field = "config." + fe.ConfigField()
	}
	return invalid(field, "the %s destination does not work with this config: %s", in.Type, msg)
}

// destinationSecrets is the secret config of a destination after a
// request: the values sent, else (on PUT) the stored ones. A secret sent
// as "" is removed.
func (s *Server) destinationSecrets(in configstore.DestinationInput, stored map[string]string) map[string]string {
	out := map[string]string{}
	for _, f := range s.cfg.DestinationTypes.Fields(in.Type) {
		if !f.Secret {
			continue
		}
		if v, sent := in.Config[f.Name]; sent {
			if str, _ := v.(string); str != "" {
				out[f.Name] = str
			}
			continue
		}
		if v := stored[f.Name]; v != "" {
			out[f.Name] = v
		}
	}
	return out
}

// destinationChanged reports whether a PUT changes anything a checker
// looks at: the type, a config field or a secret.
func (s *Server) destinationChanged(old configstore.Destination, in configstore.DestinationInput, secrets map[string]string) bool {
	if old.Type != in.Type || len(secrets) != len(old.Secrets) {
		return true
	}
	for k, v := range secrets {
		if old.Secrets[k] != v {
			return true
		}
	}
	for _, f := range s.cfg.DestinationTypes.Fields(in.Type) {
		if f.Secret {
			continue
		}
		// Stored numbers come back from jsonb as float64; fmt prints both alike.
		if fmt.Sprint(old.Config[f.Name]) != fmt.Sprint(in.Config[f.Name]) {
			return true
		}
	}
	return false
}
