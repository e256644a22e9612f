package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	processdrv "hutch/drivers/process"
	"hutch/plan"
	"hutch/reconcile"
)

// containerInfo is one row of `hutch get`, and its JSON form.
type containerInfo struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	PID       int       `json:"pid,omitempty"`
	Addresses []string  `json:"addresses"`
	Started   time.Time `json:"started,omitzero"`
	Uptime    string    `json:"uptime,omitempty"`
	Restarts  int       `json:"restarts"`
	ExitCode  int       `json:"exitCode"`
	Signal    string    `json:"signal,omitempty"`
	OOMKilled bool      `json:"oomKilled"`
	// Health is the health check's state (starting, healthy, unhealthy),
	// "" without a check.
	Health string `json:"health,omitempty"`
	// OOMKills counts every process of the container the kernel's OOM
	// killer ended (the cgroup's oom_kill counter), an exec'd one included.
	OOMKills uint64 `json:"oomKills"`
	Manifest string `json:"manifest,omitempty"`
	// Ports are the published ports, as docker ps writes them:
	// "0.0.0.0:8080->8000/tcp".
	Ports []string `json:"ports,omitempty"`
	// Labels are the container's metadata.labels, read from the
	// annotations of the config.json hutch keeps in its bundle.
	Labels map[string]string `json:"labels"`
}

// newGetCommand is `hutch get`.
func newGetCommand(h *host) *cobra.Command {
	var output string
	var selectors []string
	var showLabels bool
	cmd := &cobra.Command{
		Use:   "get [NAME...]",
		Short: "List containers: state, pid, addresses, uptime, restarts, OOM kills",
		Long: `get lists the containers the state store knows (or those named), one line each
as kubectl get and docker ps do: the state of the process as its supervisor
and the kernel report it (running, restarting, exited, stopped, dead...),
with its health check's state (running(healthy), running(starting),
running(unhealthy)) or how it ended (exited(1), exited(SIGKILL),
exited(OOMKilled)), its
pid on the host, the container's addresses, how long it has been running and
how many times it was restarted, and how many of its processes the kernel's
OOM killer ended (oom_kill in the cgroup's memory.oom_control on cgroup v1,
memory.events on v2; "OOMKilled" in the state means it was the container's
first process). -o json gives the same as a JSON list, with each container's
labels; --show-labels adds them to the table.

-l selects by label, as kubectl does: key=value, key!=value (the key absent
counts as different), key (present) or !key (absent), separated by commas or in
repeated -l flags; every requirement must hold. Labels come from the
config.json hutch keeps for each container, so get needs no manifest.`,
		Example: `  hutch get
  hutch get -l app=shop,tier!=front
  hutch get -l lab -l '!tutorial' --show-labels`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("get", args); err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("get: -o %q: expected table or json", output)
			}
			sel, err := parseSelectors(selectors)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			store := h.store()
			names := args
			if len(names) == 0 {
				if names, err = store.Containers(); err != nil {
					return fmt.Errorf("get: %w", err)
				}
			}
			// Networks and links are listed after the containers.
			names, units := splitUnits(store, names)
			if !matches(nil, sel) {
				units = nil // networks and links have no labels
			}
			rows, errs, err := getRows(h, names, sel)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				if rows == nil {
					rows = []containerInfo{}
				}
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				if err := e.Encode(rows); err != nil {
					return err
				}
			} else {
				if err := writeGetTable(w, rows, showLabels); err != nil {
					return err
				}
				if err := writeUnits(w, store, units); err != nil {
					return err
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("get: %w", errors.Join(errs...))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringArrayVarP(&selectors, "selector", "l", nil, "only containers whose labels match: key=value, key!=value, key, !key (comma-separated, repeatable)")
	cmd.Flags().BoolVar(&showLabels, "show-labels", false, "add a LABELS column to the table")
	return cmd
}

// getRows reads the row of each named container whose labels match sel: a
// container that cannot be read is an error of its own, left out.
func getRows(h *host, names []string, sel []requirement) ([]containerInfo, []error, error) {
	cg, err := h.cgroup()
	if err != nil {
		return nil, nil, err
	}
	proc, err := h.process()
	if err != nil {
		return nil, nil, err
	}
	var rows []containerInfo
	var errs []error
	for _, n := range names {
		row, err := info(h.store(), proc, n)
		if cg.Exists(h.opts.CgroupPath(n)) {
			row.OOMKills, _ = cg.OOMKills(h.opts.CgroupPath(n))
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !matches(row.Labels, sel) {
			continue
		}
		rows = append(rows, row)
	}
	return rows, errs, nil
}

// writeGetTable writes the rows as get's table, a LABELS column last with
// --show-labels.
func writeGetTable(w io.Writer, rows []containerInfo, showLabels bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "NAME\tSTATE\tPID\tADDRESSES\tUPTIME\tRESTARTS\tOOM KILLS\tPORTS"
	if showLabels {
		header += "\tLABELS"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		pid, addrs, up := "-", "-", "-"
		if r.PID > 0 {
			pid = fmt.Sprint(r.PID)
		}
		if len(r.Addresses) > 0 {
			addrs = strings.Join(r.Addresses, ",")
		}
		if r.Uptime != "" {
			up = r.Uptime
		}
		ports := "-"
		if len(r.Ports) > 0 {
			ports = strings.Join(r.Ports, ",")
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s", r.Name, r.stateText(), pid, addrs, up, r.Restarts, r.OOMKills, ports)
		if showLabels {
			line += "\t" + labelList(r.Labels)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// info reads one container's row: addresses from the state store, the rest
// from the process driver, which checks its record against the kernel.
func info(store *reconcile.Store, proc *processdrv.Driver, name string) (containerInfo, error) {
	row := containerInfo{Name: name, Addresses: []string{}, Labels: map[string]string{}}
	st, err := store.Load(name)
	if err != nil {
		return row, err
	}
	row.Manifest = st.Manifest.Path
	row.Ports = publishedPorts(st)
	if row.Labels, err = store.Labels(name); err != nil {
		return row, err
	}
	for _, rec := range st.Resources {
		if rec.Kind != plan.KindAddress {
			continue
		}
		r, err := rec.Resource()
		if err != nil {
			return row, err
		}
		if a := r.(*plan.Address); a.Netns != plan.HostNetns {
			row.Addresses = append(row.Addresses, a.CIDR)
		}
	}
	ps, err := proc.State(store.Dir(name))
	if err != nil {
		return row, err
	}
	row.State = ps.Status
	row.Restarts, row.ExitCode, row.Signal, row.OOMKilled = ps.Restarts, ps.ExitCode, ps.Signal, ps.OOMKilled
	if ps.Health != nil {
		row.Health = ps.Health.Status
	}
	if ps.OOMKilled {
		row.State += " (OOMKilled)"
	}
	if ps.Status == processdrv.StatusRunning && ps.Alive() {
		row.PID = ps.PID
		row.Started = ps.Started
		if !ps.Started.IsZero() {
			row.Uptime = uptime(time.Since(ps.Started))
		}
	}
	return row, nil
}

// stateText is the STATE column: the state with how the process ended
// (exited(1), exited(SIGKILL), exited(OOMKilled)) or its health
// (running(healthy)), as docker ps shows them, in one word so that the
// columns split on spaces (awk '{print $3}' is the pid); -o json has these
// as fields of their own.
func (r containerInfo) stateText() string {
	state, _, _ := strings.Cut(r.State, " ")
	switch {
	case r.OOMKilled:
		return state + "(OOMKilled)"
	case state == processdrv.StatusExited && r.Signal != "":
		return state + "(" + r.Signal + ")"
	case state == processdrv.StatusExited:
		return fmt.Sprintf("%s(%d)", state, r.ExitCode)
	case state == processdrv.StatusRunning && r.Health != "":
		return state + "(" + r.Health + ")"
	}
	return state
}

// uptime is a duration as docker ps shows it, to the second.
func uptime(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
