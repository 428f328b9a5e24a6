package destquery

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Text is how a value scanned from DuckDB is shown in a Result: times in
// RFC 3339 with their fraction, blobs as \x-prefixed hex (PostgreSQL's
// bytea output), lists, structs and maps as JSON, everything else as Go
// prints it.
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return `\x` + hex.EncodeToString(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	case []any, map[string]any:
		b, err := json.Marshal(x)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}
