package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"hutch/inspect"
	"hutch/plan"
	"hutch/reconcile"
)

func TestSelectors(t *testing.T) {
	shop := map[string]string{"app": "shop", "example.com/tier": "back"}
	bare := map[string]string{}
	for _, tc := range []struct {
		flags      []string
		shop, bare bool
	}{
		{nil, true, true},
		{[]string{"app=shop"}, true, false},
		{[]string{"app==shop"}, true, false},
		{[]string{"app=web"}, false, false},
		{[]string{"app!=web"}, true, true},
		{[]string{"app!=shop"}, false, true},
		{[]string{"app"}, true, false},
		{[]string{"!app"}, false, true},
		{[]string{"app=shop,example.com/tier=back"}, true, false},
		{[]string{"app=shop", "example.com/tier=front"}, false, false},
		{[]string{" app = shop , !other "}, true, false},
		{[]string{"app="}, false, false}, // an empty value is a value
	} {
		rs, err := parseSelectors(tc.flags)
		if err != nil {
			t.Errorf("%q: %v", tc.flags, err)
			continue
		}
		if got := matches(shop, rs); got != tc.shop {
			t.Errorf("%q on %v = %v", tc.flags, shop, got)
		}
		if got := matches(bare, rs); got != tc.bare {
			t.Errorf("%q on no labels = %v", tc.flags, got)
		}
	}
	for _, bad := range []string{"", "app=shop,", "a b=c", "app in (shop)", "=shop", "app=x=y", "-app"} {
		if _, err := parseSelectors([]string{bad}); err == nil {
			t.Errorf("-l %q accepted", bad)
		} else if !strings.Contains(err.Error(), "expected key=value, key!=value, key or !key") {
			t.Errorf("-l %q: %v", bad, err)
		}
	}
}

// TestGetLabels: get reads each container's labels from the config.json
// in its bundle (no manifest), shows them in -o json and --show-labels,
// and -l keeps the containers whose labels match.
func TestGetLabels(t *testing.T) {
	root := t.TempDir()
	o := plan.DefaultOptions()
	o.StateRoot = root
	store := reconcile.NewStore(o)
	for name, ann := range map[string]map[string]string{
		"front": {"hutch.label.app": "shop", "hutch.label.tier": "front"},
		"back":  {"hutch.label.app": "shop", "hutch.label.tier": "back", "run.oci.keep_original_groups": "1"},
		"lone":  nil,
	} {
		if err := store.Save(&reconcile.State{Version: reconcile.StateVersion, Container: name}); err != nil {
			t.Fatal(err)
		}
		cfg, _ := json.Marshal(map[string]any{"ociVersion": "1.2.0", "annotations": ann})
		if _, err := store.SaveConfig(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	get := func(args ...string) []containerInfo {
		t.Helper()
		code, out := runCmd(t, append([]string{"--root", root, "get", "-o", "json"}, args...)...)
		var rows []containerInfo
		if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
			t.Fatalf("get %v: exit %d, %v\n%s", args, code, err, out)
		}
		return rows
	}
	names := func(rows []containerInfo) string {
		var ns []string
		for _, r := range rows {
			ns = append(ns, r.Name)
		}
		return strings.Join(ns, ",")
	}
	all := get()
	if names(all) != "back,front,lone" {
		t.Fatalf("get: %s", names(all))
	}
	want := map[string]string{"app": "shop", "tier": "back"}
	if diff := cmp.Diff(want, all[0].Labels); diff != "" {
		t.Errorf("back's labels (-want +got):\n%s", diff)
	}
	if all[2].Labels == nil || len(all[2].Labels) != 0 {
		t.Errorf("lone's labels = %#v, want {}", all[2].Labels)
	}
	for sel, want := range map[string]string{
		"app=shop":            "back,front",
		"app=shop,tier=front": "front",
		"tier!=front":         "back,lone",
		"!app":                "lone",
		"tier":                "back,front",
		"app=web":             "",
	} {
		if got := names(get("-l", sel)); got != want {
			t.Errorf("get -l %s: %s, want %s", sel, got, want)
		}
	}
	if got := names(get("-l", "app", "-l", "tier=back", "front", "back")); got != "back" {
		t.Errorf("get -l app -l tier=back front back: %s", got)
	}

	code, out := runCmd(t, "--root", root, "get", "--show-labels", "-l", "app")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasSuffix(lines[0], "PORTS  LABELS") ||
		!strings.HasSuffix(lines[1], "app=shop,tier=back") || !strings.HasSuffix(lines[2], "app=shop,tier=front") {
		t.Errorf("get --show-labels -l app: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, "--root", root, "get"); code != 0 || strings.Contains(out, "LABELS") || strings.Contains(out, "app=shop") {
		t.Errorf("get without --show-labels: exit %d\n%s", code, out)
	}
	if code, _ := runCmd(t, "--root", root, "get", "-l", "app in (shop)"); code == 0 {
		t.Error("get -l with a set-based selector: exit 0")
	}

	// inspect shows them too, from the same record.
	code, out = runCmd(t, "--root", root, "inspect", "back")
	if code != 0 || !strings.Contains(out, "\nLabels:    app=shop,tier=back\n") {
		t.Errorf("inspect back: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "--root", root, "inspect", "-o", "json", "lone")
	var in inspect.Container
	if err := json.Unmarshal([]byte(out), &in); code != 0 || err != nil || in.Labels == nil || len(in.Labels) != 0 {
		t.Errorf("inspect -o json lone: exit %d, %v, labels %#v", code, err, in.Labels)
	}
}
