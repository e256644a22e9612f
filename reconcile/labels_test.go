package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/plan"
)

// TestStoreLabels: a container's labels are the hutch annotations of its
// recorded config.json; none before one is written; a config.json that is
// not JSON is an error naming it.
func TestStoreLabels(t *testing.T) {
	o := plan.DefaultOptions()
	o.StateRoot = t.TempDir()
	s := NewStore(o)
	if got, err := s.Labels("web"); err != nil || len(got) != 0 || got == nil {
		t.Errorf("no config.json: %v, %v; want an empty map", got, err)
	}
	os.MkdirAll(s.Dir("web"), 0o700)
	cfg := `{"annotations": {"` + plan.LabelPrefix + `app": "shop", "org.opencontainers.image.title": "x"}}`
	os.WriteFile(s.ConfigPath("web"), []byte(cfg), 0o600)
	got, err := s.Labels("web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"app": "shop"}, got); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	os.WriteFile(filepath.Join(s.Dir("web"), "config.json"), []byte("{"), 0o600)
	if _, err := s.Labels("web"); err == nil || !strings.Contains(err.Error(), "container web: labels: "+s.ConfigPath("web")) {
		t.Errorf("a broken config.json: %v", err)
	}
}
