package settings

import "testing"

func TestCaptureBackfillOnRewrite(t *testing.T) {
	if s := Default(); !s.CaptureBackfillOnRewrite {
		t.Fatalf("default: backfill on rewrite %v, want on", s.CaptureBackfillOnRewrite)
	}
	for _, tt := range []struct {
		v       string
		want    bool
		wantErr bool
	}{{"off", false, false}, {"on", true, false}, {"0", false, false}, {"sometimes", true, true}} {
		t.Setenv(EnvRewriteFill, tt.v)
		s, err := Load()
		if (err != nil) != tt.wantErr || s.CaptureBackfillOnRewrite != tt.want {
			t.Errorf("%s=%s: backfill on rewrite %v, err %v", EnvRewriteFill, tt.v, s.CaptureBackfillOnRewrite, err)
		}
	}
}
