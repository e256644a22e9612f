package main

import (
	"fmt"
	"sort"
	"strings"

	"hutch/spec"
)

// requirement is one term of a label selector, as kubectl reads them:
// key=value (or key==value), key!=value (true when the key is absent
// too), key (present) or !key (absent).
type requirement struct {
	key, value string
	op         string // "=", "!=", "exists" or "!exists"
}

// parseSelectors reads the -l flags: each holds requirements separated by
// commas, and every requirement of every flag must hold.
func parseSelectors(flags []string) ([]requirement, error) {
	var out []requirement
	for _, f := range flags {
		for _, term := range strings.Split(f, ",") {
			r, err := parseRequirement(strings.TrimSpace(term))
			if err != nil {
				return nil, fmt.Errorf("-l %q: %w", f, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

const expectSelector = "key=value, key!=value, key or !key, separated by commas"

func parseRequirement(s string) (requirement, error) {
	var r requirement
	switch {
	case s == "":
		return r, fmt.Errorf("an empty requirement (expected %s)", expectSelector)
	case strings.Contains(s, "!="):
		r.op = "!="
		r.key, r.value, _ = strings.Cut(s, "!=")
	case strings.Contains(s, "=="):
		r.op = "="
		r.key, r.value, _ = strings.Cut(s, "==")
	case strings.Contains(s, "="):
		r.op = "="
		r.key, r.value, _ = strings.Cut(s, "=")
	case strings.HasPrefix(s, "!"):
		r.op, r.key = "!exists", s[1:]
	default:
		r.op, r.key = "exists", s
	}
	r.key, r.value = strings.TrimSpace(r.key), strings.TrimSpace(r.value)
	if !spec.ValidLabelKey(r.key) {
		return r, fmt.Errorf("%q is not a label key in %q (expected %s, keys as metadata.labels writes them)", r.key, s, expectSelector)
	}
	if strings.ContainsAny(r.value, "=!") {
		return r, fmt.Errorf("%q: a value holds '=' or '!' (expected %s)", s, expectSelector)
	}
	return r, nil
}

// matches reports whether labels satisfy every requirement.
func matches(labels map[string]string, rs []requirement) bool {
	for _, r := range rs {
		v, ok := labels[r.key]
		switch r.op {
		case "=":
			if !ok || v != r.value {
				return false
			}
		case "!=":
			if ok && v == r.value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return true
}

// labelList writes labels as kubectl's --show-labels does:
// "app=shop,tier=back", sorted by key; "-" for none.
func labelList(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + labels[k]
	}
	return strings.Join(keys, ",")
}
