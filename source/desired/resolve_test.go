package desired

import (
	"log/slog"
	"testing"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// A group key of a source this configuration does not read names no team: before issue 14 it
// reconciled everything. A group its source has not shown yet still does.
func TestResolveUnknownSource(t *testing.T) {
	cfg := storageConfig(t)
	okta := &stubSource{}
	s := New(cfg, []IdP{{Key: "okta", Name: "okta", Source: okta, Rule: &config.GroupRule{Prefix: "wandb-", Profile: "minio"}}}, nil, slog.New(slog.DiscardHandler))
	tests := []struct {
		key   queuekey.Key
		known bool
		ok    bool
	}{
		{queuekey.Group("nowhere", "g1"), false, true},
		{queuekey.Group("scim", "g1"), false, true}, // SCIM is not enabled
		{queuekey.Group("okta", "g1"), true, true},
	}
	for _, tt := range tests {
		src, _, _ := tt.key.Group()
		if s.Known(src) != tt.known {
			t.Errorf("Known(%q) = %v", src, !tt.known)
		}
		teams, ok := s.Resolve(t.Context(), tt.key)
		if ok != tt.ok || !tt.known && len(teams) > 0 {
			t.Errorf("Resolve(%q) = %v, %v; want no full reconcile", tt.key, teams, ok)
		}
	}
}
