package settings

import (
	"testing"
	"time"
)

func TestDuplicateWindow(t *testing.T) {
	for _, tc := range []struct {
		name, env, natsURL string
		want               time.Duration
		loadErr            bool
	}{
		{name: "embedded default", want: EmbeddedDuplicateWindow},
		{name: "external default", natsURL: "nats://nats:4222", want: ExternalDuplicateWindow},
		{name: "explicit, embedded", env: "90s", want: 90 * time.Second},
		{name: "explicit, external", env: "10m", natsURL: "nats://nats:4222", want: 10 * time.Minute},
		{name: "zero is the default", env: "0", want: EmbeddedDuplicateWindow},
		{name: "not a duration", env: "long", loadErr: true},
		{name: "negative", env: "-1s", loadErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(EnvDupWindow, tc.env)
			}
			t.Setenv(EnvNATSURL, tc.natsURL)
			s, err := Load()
			if tc.loadErr {
				if err == nil {
					t.Fatalf("%s=%s accepted", EnvDupWindow, tc.env)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.DuplicateWindow(); got != tc.want {
				t.Fatalf("DuplicateWindow() = %s, want %s", got, tc.want)
			}
		})
	}
}
