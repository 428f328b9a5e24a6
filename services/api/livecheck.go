package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destcheck"
)

// DestinationLiveCheckFunc runs a destination type's live check against
// the destination a stored config (secrets included) points at: log in,
// use the warehouse and stage, round-trip rows of every mapped type
// through the driver's own write path, clean up (pkg/destcheck). It
// reports failures in the Report, never as an error; it must return
// within ctx.
type DestinationLiveCheckFunc func(ctx context.Context, config json.RawMessage) destcheck.Report

// DestinationLiveCheckers are the live checks by destination type,
// provided by the composition root (services/rosetta).
type DestinationLiveCheckers map[string]DestinationLiveCheckFunc

// LiveCheckView is the answer of POST /destinations/{id}/check-live and
// what `rosetta check-destination` prints.
type LiveCheckView struct {
	DestinationID int64              `json:"destination_id"`
	Name          string             `json:"name"`
	Type          string             `json:"type"`
	OK            bool               `json:"ok"`
	Results       []destcheck.Result `json:"results"`
}

// LiveChecks runs live destination checks with the stored credentials;
// the API and `rosetta check-destination` share it.
type LiveChecks struct {
	Store    *configstore.Store
	Checkers DestinationLiveCheckers
}

// Run checks destination id. A destination type without a live check is
// a 422 saying which types have one.
func (l LiveChecks) Run(ctx context.Context, id int64) (LiveCheckView, error) {
	d, err := l.Store.DestinationWithSecrets(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return LiveCheckView{}, notFound("destination %d does not exist", id)
	}
	if err != nil {
		return LiveCheckView{}, err
	}
	check := l.Checkers[d.Type]
	if check == nil {
		types := make([]string, 0, len(l.Checkers))
		for t := range l.Checkers {
			types = append(types, t)
		}
		slices.Sort(types)
		return LiveCheckView{}, invalid("", "destination %s is a %s destination: the live check runs on %s destinations only; "+
			"POST /destinations/check checks a %s config (a connection, not a round trip)", d.Name, d.Type, strings.Join(types, ", "), d.Type)
	}
	raw, err := d.ConfigWithSecrets()
	if err != nil {
		return LiveCheckView{}, fmt.Errorf("destination %d config: %w", id, err)
	}
	rep := check(ctx, raw)
	results := rep.Results
	if results == nil {
		results = []destcheck.Result{}
	}
	return LiveCheckView{DestinationID: d.ID, Name: d.Name, Type: d.Type, OK: rep.OK, Results: results}, nil
}

// checkDestinationLive answers POST /destinations/{id}/check-live: the
// live check of a stored destination, within the request's time. A
// failed check is still a 200 with ok false: the request worked.
func (s *Server) checkDestinationLive(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	view, err := LiveChecks{Store: s.store, Checkers: s.cfg.LiveCheckers}.Run(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(view)
}
