package changetail

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
)

// Escape makes s safe to print on a terminal: control characters
// (C0, DEL, C1: escape sequences start with them) and format characters
// (Unicode Cf: bidi overrides, zero-width characters, which make text read
// other than it is) become \uXXXX escapes, the form JSON strings use, so
// escaped JSON stays valid. Table and column names come from the source
// database and values from its rows: neither is trusted.
func Escape(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteRune(r)
		case !unsafeRune(r):
			b.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return (unicode.IsControl(r) && r != '\t') || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar
}
