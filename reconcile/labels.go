package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"hutch/plan"
)

// Labels are a container's labels as hutch recorded them: the annotations
// of the config.json in its bundle (plan.Labels). A container whose
// config.json was never written (its first apply stopped before) has none.
func (s *Store) Labels(container string) (map[string]string, error) {
	b, err := os.ReadFile(s.ConfigPath(container))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: labels: %w", container, err)
	}
	var cfg struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("container %s: labels: %s: %w", container, s.ConfigPath(container), err)
	}
	return plan.Labels(cfg.Annotations), nil
}
