package contracts

import _ "embed"

// ChangeEventSchema is the JSON Schema (draft 2020-12) of the change event.
//
//go:embed change-event.schema.json
var ChangeEventSchema []byte
