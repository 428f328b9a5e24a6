package postgres

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// copyEscaper escapes a value for COPY's text format. Values arrive in
// PostgreSQL's text form, which COPY's text format parses with the column
// type's input function.
var copyEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

func writeValue(buf *bytes.Buffer, v cdc.Value) {
	if v.Null {
		buf.WriteString(`\N`)
		return
	}
	copyEscaper.WriteString(buf, v.Text)
}

// encodeRows writes the staging rows of one table batch in COPY text format,
// in the column order of buildStatements: the data columns (cols), then
// del, lsn, seq, unchanged positions, fallback flag and fallback key.
func encodeRows(buf *bytes.Buffer, cols []stageColumn, rows []cdc.RowChange) {
	pos := make(map[string]int, len(cols))
	keyIdx := make(map[string]int, len(cols))
	for i, c := range cols {
		pos[c.Name] = i + 1
		if c.Key {
			keyIdx[c.Name] = len(keyIdx)
		}
	}
	for _, r := range rows {
		for i, c := range cols {
			if i > 0 {
				buf.WriteByte('\t')
			}
			if k, ok := keyIdx[c.Name]; ok && k < len(r.Key) {
				// The key decides which row this is, for deletes too.
				writeValue(buf, r.Key[k])
				continue
			}
			v, ok := r.Values[c.Name]
			if r.Delete || !ok {
				v = cdc.Value{Null: true}
			}
			writeValue(buf, v)
		}
		if r.Delete {
			buf.WriteString("\tt\t")
		} else {
			buf.WriteString("\tf\t")
		}
		buf.WriteString(strconv.FormatInt(int64(r.Version.LSN), 10))
		buf.WriteByte('\t')
		buf.WriteString(strconv.FormatInt(r.Version.Seq, 10))
		buf.WriteByte('\t')
		var unch []string
		for _, name := range r.Unchanged {
			if p, ok := pos[name]; ok {
				unch = append(unch, strconv.Itoa(p))
			}
		}
		if len(unch) == 0 || r.Delete {
			buf.WriteString(`\N`)
		} else {
			buf.WriteString("{" + strings.Join(unch, ",") + "}")
		}
		hasFallback := len(r.FallbackKey) == len(keyIdx) && len(unch) > 0 && !r.Delete
		if hasFallback {
			buf.WriteString("\tt")
		} else {
			buf.WriteString("\tf")
		}
		for k := 0; k < len(keyIdx); k++ {
			buf.WriteByte('\t')
			if hasFallback {
				writeValue(buf, r.FallbackKey[k])
			} else {
				buf.WriteString(`\N`)
			}
		}
		// The sent text of checked columns, again, for the exactness
		// check (buildStatements).
		for _, c := range cols {
			if c.Check == "" {
				continue
			}
			buf.WriteByte('\t')
			v, ok := r.Values[c.Name]
			if k, isKey := keyIdx[c.Name]; isKey && k < len(r.Key) {
				v, ok = r.Key[k], true
			}
			if r.Delete || !ok {
				v = cdc.Value{Null: true}
			}
			writeValue(buf, v)
		}
		buf.WriteByte('\n')
	}
}
