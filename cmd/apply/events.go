package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	processdrv "hutch/drivers/process"
	"hutch/plan"
)

// eventsPoll is how often `hutch events` looks for new events.
const eventsPoll = 200 * time.Millisecond

// newEventsCommand is `hutch events`.
func newEventsCommand(h *host) *cobra.Command {
	var output, since string
	var noFollow bool
	cmd := &cobra.Command{
		Use:   "events [NAME...]",
		Short: "Show what happens to containers: starts, exits, OOM kills, health changes, restarts",
		Long: `events prints what the containers' supervisors record as it happens, one line
each with its time, as docker events does: start (with the pid), exit (status
or signal), oom (the kernel's OOM killer ended a process of the container),
restart (the restart policy starts the process again), health (the health
check's state changed, with the failing check's output) and stop (a stop was
asked for). Each supervisor appends them to events.jsonl in the container's
bundle (rotated at 1 MiB, one older file kept), so they outlive hutch and the
supervisor.

It follows new events until Ctrl-C; --since first prints those since a time
(RFC 3339) or a duration ago (1h, 30m), and --no-follow stops after them.
Without names it shows every container of the state store, those created
while it follows too. -o json prints each event as one JSON object per line
(time, container, type, pid, exitCode, signal, health, message).`,
		Example: `  hutch events
  hutch events --since 1h --no-follow web
  hutch events -o json db | jq -c 'select(.type == "health")'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("events", args); err != nil {
				return err
			}
			if output != "human" && output != "json" {
				return fmt.Errorf("events: -o %q: expected human or json", output)
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return fmt.Errorf("events: --since: %w", err)
			}
			o := h.opts
			store := h.store()
			// list names what the store holds (or the names given), and
			// containersOf keeps the containers among them: networks and
			// links have no events.
			list := func() ([]string, error) {
				if len(args) > 0 {
					return args, nil
				}
				return store.Containers()
			}
			containersOf := func(names []string) []string {
				if len(args) > 0 {
					return names
				}
				cs, _ := splitUnits(store, names)
				return cs
			}
			w := cmd.OutOrStdout()
			write := func(evs []processdrv.Event) error {
				sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
				for _, e := range evs {
					if err := writeEvent(w, output, e); err != nil {
						return err
					}
				}
				return nil
			}
			all, err := list()
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			names := containersOf(all)
			if !from.IsZero() {
				var past []processdrv.Event
				for _, n := range names {
					evs, err := processdrv.ReadEvents(o.BundleDir(n), from)
					if err != nil {
						return fmt.Errorf("events: container %s: %w", n, err)
					}
					past = append(past, evs...)
				}
				if err := write(past); err != nil {
					return err
				}
			}
			if noFollow {
				return nil
			}
			return followEvents(cmd.Context(), o, all, names, list, containersOf, write)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "human", "output format: human or json (one object per line)")
	cmd.Flags().StringVar(&since, "since", "", "first print the events since a time (RFC 3339) or a duration ago (1h, 30m)")
	cmd.Flags().BoolVar(&noFollow, "no-follow", false, "stop after the past events instead of following new ones")
	return cmd
}

// followEvents prints the containers' new events as their supervisors
// append them, looking every eventsPoll, and those of containers made
// meanwhile from their first one, until a Ctrl-C or SIGTERM. seen are the
// names list gave at the start, names the containers among them; only a
// name list gives later for the first time is looked up (containersOf
// reads its record), so a poll reads no record it has read before.
func followEvents(c context.Context, o plan.Options, seen, names []string, list func() ([]string, error),
	containersOf func([]string) []string, write func([]processdrv.Event) error) error {
	ctx, stop := signal.NotifyContext(c, os.Interrupt, syscall.SIGTERM)
	defer stop()
	known := map[string]bool{}
	for _, n := range seen {
		known[n] = true
	}
	tails := map[string]*processdrv.EventsTail{}
	for _, n := range names {
		tails[n] = processdrv.NewEventsTail(o.BundleDir(n))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(eventsPoll):
		}
		var evs []processdrv.Event
		for _, n := range slices.Sorted(maps.Keys(tails)) {
			e, err := tails[n].Next()
			if err != nil {
				return fmt.Errorf("events: container %s: %w", n, err)
			}
			evs = append(evs, e...)
		}
		if err := write(evs); err != nil {
			return err
		}
		// Containers made since: from their first event on.
		now, err := list()
		if err != nil {
			continue
		}
		var fresh []string
		for _, n := range now {
			if !known[n] {
				known[n] = true
				fresh = append(fresh, n)
			}
		}
		for _, n := range containersOf(fresh) {
			tails[n] = processdrv.NewEventsTailFromStart(o.BundleDir(n))
		}
	}
}

// parseSince reads --since: "" (no past events), a duration before now, or
// an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: expected a duration such as 1h or 30m, or a time such as 2026-12-04T10:00:00Z", s)
}

// writeEvent prints one event: a JSON line, or for people
// "2026-12-04T10:00:00.123Z  web  exit  status 1".
func writeEvent(w io.Writer, output string, e processdrv.Event) error {
	if output == "json" {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	var what []string
	if e.PID > 0 {
		what = append(what, fmt.Sprintf("pid %d", e.PID))
	}
	if e.Signal != "" {
		what = append(what, "signal "+e.Signal)
	} else if e.ExitCode != nil {
		what = append(what, fmt.Sprintf("status %d", *e.ExitCode))
	}
	if e.Health != "" {
		what = append(what, e.Health)
	}
	if e.Message != "" {
		what = append(what, strings.TrimSpace(e.Message))
	}
	_, err := fmt.Fprintf(terminalSafe(w), "%s  %s  %s  %s\n", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Container, e.Type, strings.Join(what, ", "))
	return err
}
