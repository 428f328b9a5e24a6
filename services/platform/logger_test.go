package platform

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/settings"
)

// TestLogsEscapeNames: names and values from the source that hold
// terminal escapes (C0, DEL, C1) or bidi and zero-width characters reach
// the log escaped, in both formats.
func TestLogsEscapeNames(t *testing.T) {
	hostile := "orders\x1b[2J\u009b31m\x7f\u202eevil\u200b"
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := newLogger(&buf, &settings.Settings{LogFormat: format, LogLevel: "info"})
		log.Info("applied "+hostile, "table", hostile, "error", errors.New("bad row "+hostile))
		out := buf.String()
		for _, raw := range []string{"\x1b", "\u009b", "\x7f", "\u202e", "\u200b"} {
			if strings.Contains(out, raw) {
				t.Errorf("%s log holds %q raw: %q", format, raw, out)
			}
		}
		if !strings.Contains(out, "orders") || !strings.Contains(out, `u202e`) {
			t.Errorf("%s log lost the name: %q", format, out)
		}
	}
}
