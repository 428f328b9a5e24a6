package sink

import (
	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

// BuiltinDrivers is the factories of the built-in destination types
// (services/sink/drivers/builtin).
func BuiltinDrivers() Drivers {
	return DriversOf(builtin.Types())
}

// DriversOf is the factories of types, by type name.
func DriversOf(types desttype.Types) Drivers {
	out := make(Drivers, len(types))
	for _, t := range types {
		out[t.Name] = t.Open
	}
	return out
}
