package contracts

import _ "embed"

// ChangeEventSchema is the JSON Schema (draft 2020-12) of a change message
// body, either envelope version (chosen by "v"). Its definition
// "#/$defs/change" alone is a version 1 change, the shape of each change
// of a version 2 message expanded (Message.All); "#/$defs/message" is a
// version 2 message.
//
//go:embed change-event.schema.json
var ChangeEventSchema []byte
