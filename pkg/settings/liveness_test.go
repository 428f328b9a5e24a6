package settings

import (
	"testing"
	"time"
)

func TestLoadLiveness(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.NATSPingInterval != 5*time.Second || s.NATSMaxPingsOut != 2 || s.CaptureReceiveTimeout != 30*time.Second || s.SinkApplyTimeout != 2*time.Minute {
		t.Fatalf("defaults: ping %s × %d, receive %s, apply %s", s.NATSPingInterval, s.NATSMaxPingsOut, s.CaptureReceiveTimeout, s.SinkApplyTimeout)
	}
	t.Setenv(EnvNATSPing, "2s")
	t.Setenv(EnvNATSPings, "4")
	t.Setenv(EnvRecvTimeout, "15s")
	t.Setenv(EnvApplyTime, "20s")
	if s, err = Load(); err != nil {
		t.Fatal(err)
	}
	if s.NATSPingInterval != 2*time.Second || s.NATSMaxPingsOut != 4 || s.CaptureReceiveTimeout != 15*time.Second || s.SinkApplyTimeout != 20*time.Second {
		t.Fatalf("overrides: ping %s × %d, receive %s, apply %s", s.NATSPingInterval, s.NATSMaxPingsOut, s.CaptureReceiveTimeout, s.SinkApplyTimeout)
	}
	t.Setenv(EnvApplyTime, "soon")
	if _, err := Load(); err == nil {
		t.Fatalf("%s=soon accepted", EnvApplyTime)
	}
	t.Setenv(EnvApplyTime, "0s")
	s, _ = Load()
	s.ConfigDSN, s.SecretKey = "postgres://x", "0123456789abcdef0"
	if _, err := s.Validate(); err == nil {
		t.Fatalf("%s=0s validated", EnvApplyTime)
	}
}
