package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	processdrv "hutch/drivers/process"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"1h":                   now.Add(-time.Hour),
		"90s":                  now.Add(-90 * time.Second),
		"2026-12-04T09:00:00Z": now.Add(-time.Hour),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "10"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

func TestWriteEvent(t *testing.T) {
	code := 1
	e := processdrv.Event{Time: time.Date(2026, 12, 4, 10, 0, 0, 123e6, time.UTC), Container: "web", Type: "exit", PID: 42, ExitCode: &code}
	var b bytes.Buffer
	if err := writeEvent(&b, "human", e); err != nil {
		t.Fatal(err)
	}
	if want := "2026-12-04T10:00:00.123Z  web  exit  pid 42, status 1\n"; b.String() != want {
		t.Errorf("human: %q, want %q", b.String(), want)
	}
	b.Reset()
	h := processdrv.Event{Time: e.Time, Container: "db", Type: "health", Health: "unhealthy", Message: "connect: connection refused\n"}
	writeEvent(&b, "human", h)
	if want := "2026-12-04T10:00:00.123Z  db  health  unhealthy, connect: connection refused\n"; b.String() != want {
		t.Errorf("human: %q, want %q", b.String(), want)
	}
	b.Reset()
	writeEvent(&b, "json", e)
	var back processdrv.Event
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Type != "exit" || back.ExitCode == nil || *back.ExitCode != 1 || !back.Time.Equal(e.Time) {
		t.Errorf("json %q: %+v %v", b.String(), back, err)
	}
}
