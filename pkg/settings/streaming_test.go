package settings

import "testing"

func TestCaptureStreaming(t *testing.T) {
	if s := Default(); !s.CaptureStreaming || s.CaptureSpoolDir != "" {
		t.Fatalf("defaults: streaming %v, spool dir %q", s.CaptureStreaming, s.CaptureSpoolDir)
	}
	for _, tt := range []struct {
		v       string
		want    bool
		wantErr bool
	}{{"off", false, false}, {"on", true, false}, {"false", false, false}, {"maybe", true, true}} {
		t.Setenv(EnvStreaming, tt.v)
		t.Setenv(EnvSpoolDir, "/var/spool/rosetta")
		s, err := Load()
		if (err != nil) != tt.wantErr || s.CaptureStreaming != tt.want || s.CaptureSpoolDir != "/var/spool/rosetta" {
			t.Errorf("%s=%s: streaming %v, spool dir %q, err %v", EnvStreaming, tt.v, s.CaptureStreaming, s.CaptureSpoolDir, err)
		}
	}
}
