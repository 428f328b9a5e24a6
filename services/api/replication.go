package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/pgcatalog"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// replCheck says which of a source's slot and publication a create or
// update must look up on the source: one Rosetta would take over must be
// adopted explicitly, and one to adopt must exist.
type replCheck struct {
	slot, pub           string
	adoptSlot, adoptPub bool
	checkSlot, checkPub bool
}

func (rc *replCheck) needed() bool { return rc != nil && (rc.checkSlot || rc.checkPub) }

// checkReplication applies rc on conn.
func checkReplication(ctx context.Context, conn *pgx.Conn, rc *replCheck) error {
	slotExists, pubExists, err := pgrepl.Existing(ctx, conn, rc.slot, rc.pub)
	if err != nil {
		return err
	}
	if rc.checkSlot {
		switch {
		case slotExists && !rc.adoptSlot:
			return invalid("slot", "replication slot %s already exists on the source and Rosetta did not create it: "+
				"set adopt_slot to true to use it as it is (Rosetta then never drops it), or choose another slot name", rc.slot)
		case !slotExists && rc.adoptSlot:
			return invalid("adopt_slot", "adopt_slot is set but replication slot %s does not exist on the source: create it "+
				"(SELECT pg_create_logical_replication_slot('%s', 'pgoutput')) or leave adopt_slot false to let Rosetta create and manage one", rc.slot, rc.slot)
		}
	}
	if rc.checkPub {
		switch {
		case pubExists && !rc.adoptPub:
			return invalid("publication", "publication %s already exists on the source and Rosetta did not create it: "+
				"set adopt_publication to true to use it as it is (Rosetta then never alters or drops it), or choose another publication name", rc.pub)
		case !pubExists && rc.adoptPub:
			return invalid("adopt_publication", "adopt_publication is set but publication %s does not exist on the source: "+
				"create it (CREATE PUBLICATION ... FOR TABLE ...) or leave adopt_publication false to let Rosetta create and manage one", rc.pub)
		}
	}
	return nil
}

// managed lists the slot and publication of src that Rosetta created and
// so drops: those not adopted.
func managed(src configstore.Source) (slot, pub string) {
	if !src.AdoptSlot {
		slot = src.Slot
	}
	if !src.AdoptPublication {
		pub = src.Publication
	}
	return slot, pub
}

// dropReplication drops slot and publication (either may be "") on the
// source at e, within the check timeout (a capture still holding the slot
// is ended first).
func (s *Server) dropReplication(ctx context.Context, e pgcatalog.Endpoint, slot, pub string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if slot != "" {
		if err := pgrepl.DropSlot(ctx, conn, slot); err != nil {
			return err
		}
	}
	if pub != "" {
		return pgrepl.DropPublication(ctx, conn, pub)
	}
	return nil
}

// deleteSource answers DELETE /sources/{id}. The slot and publication
// Rosetta manages for the source are dropped with it: the slot holds WAL
// on the source for as long as it exists. Because dropping the slot loses
// the changes it still holds, the request must say so:
// ?drop_replication=true drops them, ?drop_replication=false leaves them
// (the answer says how to drop them by hand). Without the parameter, a
// source whose managed slot or publication exists is a 409 that names
// them. Adopted ones are never dropped.
func (s *Server) deleteSource(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	choice := c.Query("drop_replication")
	if choice != "" && choice != "true" && choice != "false" {
		return invalid("drop_replication", "drop_replication must be true or false")
	}
	src, err := s.store.SourceWithSecrets(c.UserContext(), id)
	if err != nil {
		return sourceLookupError(id, err)
	}
	slot, pub := managed(src)
	e := pgcatalog.Endpoint{Host: src.Host, Port: src.Port, Database: src.Database, User: src.User, Password: src.Password, Security: src.Security()}
	var exist []string
	if choice != "false" && (slot != "" || pub != "") {
		exist, err = s.existingManaged(c.UserContext(), e, slot, pub)
		if err != nil {
			return &apiError{status: fiber.StatusConflict, field: "drop_replication", msg: fmt.Sprintf(
				"cannot reach source %q to drop the replication slot and publication Rosetta made there (%s): fix the source and retry, "+
					"or delete with ?drop_replication=false and drop them yourself: %s", src.Name, scrubbed(err, src.Password), dropSQL(slot, pub))}
		}
		if len(exist) > 0 && choice == "" {
			return &apiError{status: fiber.StatusConflict, field: "drop_replication", msg: fmt.Sprintf(
				"deleting source %q drops %s that Rosetta created on it (changes the slot still holds are lost): "+
					"repeat with ?drop_replication=true, or ?drop_replication=false to keep them", src.Name, strings.Join(exist, " and "))}
		}
	}
	if err := s.store.DeleteSource(c.UserContext(), id); err != nil {
		return sourceLookupError(id, err)
	}
	s.publish(c, contracts.KindSource, id, contracts.ActionDeleted)
	if choice == "true" && len(exist) > 0 {
		if err := s.dropReplication(c.UserContext(), e, slot, pub); err != nil {
			return &apiError{status: fiber.StatusInternalServerError, msg: fmt.Sprintf(
				"source %d was deleted but dropping its replication objects failed (%s): drop them on the source: %s", id, scrubbed(err, src.Password), dropSQL(slot, pub))}
		}
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// existingManaged names which of slot and publication exist at e.
func (s *Server) existingManaged(ctx context.Context, e pgcatalog.Endpoint, slot, pub string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	conn, err := pgcatalog.Connect(ctx, e)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	slotExists, pubExists, err := pgrepl.Existing(ctx, conn, slot, pub)
	if err != nil {
		return nil, err
	}
	var out []string
	if slot != "" && slotExists {
		out = append(out, "replication slot "+slot)
	}
	if pub != "" && pubExists {
		out = append(out, "publication "+pub)
	}
	return out, nil
}

func dropSQL(slot, pub string) string {
	var parts []string
	if slot != "" {
		parts = append(parts, fmt.Sprintf("SELECT pg_drop_replication_slot('%s');", slot))
	}
	if pub != "" {
		parts = append(parts, "DROP PUBLICATION "+pgx.Identifier{pub}.Sanitize()+";")
	}
	return strings.Join(parts, " ")
}

func scrubbed(err error, password string) string {
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "********")
	}
	return msg
}

// sourceLookupError maps the store's errors about source id to answers.
func sourceLookupError(id int64, err error) error {
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("source %d does not exist", id)
	}
	return fromStore(err)
}
