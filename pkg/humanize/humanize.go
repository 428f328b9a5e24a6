// Package humanize formats figures for people reading a status line or an
// API reason, where "53,000 changes pending" reads faster than "53000".
package humanize

import (
	"strconv"
	"strings"
)

// Thousands prints n with comma separators: 53000 -> "53,000".
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
