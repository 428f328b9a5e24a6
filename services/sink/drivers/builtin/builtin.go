// Package builtin lists the destination types of this build, in the order
// the API shows them. The composition root (services/rosetta) hands the
// list to the API, which checks configs and lists the types from it, and
// to the sink, which opens drivers from it. A new destination type lives in
// services/sink/drivers/<type>, exports its desttype.Type, is added here
// with one line and has its config schema in contracts/openapi.yaml;
// drivers never register themselves.
package builtin

import (
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
	"github.com/rosettacdc/rosetta/services/sink/drivers/duckdb"
	"github.com/rosettacdc/rosetta/services/sink/drivers/postgres"
	"github.com/rosettacdc/rosetta/services/sink/drivers/snowflake"
)

// Types returns the built-in destination types.
func Types() desttype.Types {
	return desttype.Types{postgres.Type(), snowflake.Type(), duckdb.Type()}
}
