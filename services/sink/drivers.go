package sink

import (
	"github.com/rosettacdc/rosetta/services/sink/drivers/duckdb"
	"github.com/rosettacdc/rosetta/services/sink/drivers/postgres"
	"github.com/rosettacdc/rosetta/services/sink/drivers/snowflake"
)

// BuiltinDrivers is the composition of destination drivers in this build.
// A new destination type lives in services/sink/drivers/<type> and is added
// here with one line; drivers never register themselves.
func BuiltinDrivers() Drivers {
	return Drivers{
		"postgres":  postgres.Factory,
		"duckdb":    duckdb.Factory,
		"snowflake": snowflake.Factory,
	}
}
