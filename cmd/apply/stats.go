package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hutch/inspect"
)

// newStatsCommand is `hutch stats`.
func newStatsCommand(h *host) *cobra.Command {
	var (
		output string
		watch  bool
		every  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stats [NAME...]",
		Short: "Show containers' memory, CPU, pids, OOM kills and network counters",
		Long: `stats reads, for each container (all that the state store knows, or those
named), what the kernel counts for it:

  MEM/LIMIT    memory.usage_in_bytes / memory.limit_in_bytes (v2: memory.current / memory.max)
  PEAK         memory.max_usage_in_bytes (v2: memory.peak)
  CPU          cpuacct.usage (v2: cpu.stat usage_usec) between two readings
  THROTTLED    cpu.stat nr_throttled (periods the quota ran out) / throttled_time
  PIDS         pids.current / pids.max
  OOM          oom_kill in memory.oom_control (v2: memory.events)
  NET RX/TX    bytes of the container's interfaces (netlink IFLA_STATS64, as ip -s link)

The files are in the container's cgroup folders (-o json lists them, and
'hutch inspect NAME' too), for example /sys/fs/cgroup/memory/hutch/NAME/.

Without --watch, stats prints one snapshot (it reads the CPU counter twice,
a quarter of a second apart, for CPU). --watch refreshes every second, in
place on a terminal, as docker stats does; Ctrl-C ends it. -o json prints
the raw counters.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("stats", args); err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("stats: -o %q: expected table or json", output)
			}
			if every <= 0 {
				return fmt.Errorf("stats: --interval %v: expected a positive duration", every)
			}
			r, err := h.reader()
			if err != nil {
				return fmt.Errorf("stats: %w", err)
			}
			read := func() ([]*inspect.Stats, []error) { return r.Stats(args) }
			w := cmd.OutOrStdout()
			if !watch {
				prev, _ := read()
				time.Sleep(250 * time.Millisecond)
				rows, errs := read()
				inspect.CPUPercent(rows, prev)
				if err := writeStats(w, output, rows); err != nil {
					return err
				}
				if len(errs) > 0 {
					return fmt.Errorf("stats: %w", errors.Join(errs...))
				}
				return nil
			}
			c, stop := signal.NotifyContext(ctx(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchStats(c, w, output, read, every, useColor(w))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh until interrupted")
	cmd.Flags().DurationVar(&every, "interval", time.Second, "time between refreshes with --watch")
	return cmd
}

// watchStats reads and refreshes the rows every interval until c ends. On a terminal
// it redraws in place (cursor home, each line cleared to its end, the rest
// of the screen cleared), as docker stats does; otherwise it writes one
// snapshot after another.
func watchStats(c context.Context, w io.Writer, output string, read func() ([]*inspect.Stats, []error), every time.Duration, tty bool) error {
	prev, _ := read()
	if tty {
		fmt.Fprint(w, "\x1b[2J") // clear the screen once
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return nil
		case <-t.C:
		}
		rows, _ := read()
		inspect.CPUPercent(rows, prev)
		prev = rows
		if !tty {
			if err := writeStats(w, output, rows); err != nil {
				return err
			}
			continue
		}
		var b strings.Builder
		if err := writeStats(&b, output, rows); err != nil {
			return err
		}
		text := strings.ReplaceAll(strings.TrimRight(b.String(), "\n"), "\n", "\x1b[K\n")
		if _, err := fmt.Fprint(w, "\x1b[H"+text+"\x1b[K\n\x1b[J"); err != nil {
			return err
		}
	}
}

// writeStats writes rows as a table that fits 80 columns, or as JSON.
// Long names are cut as much as the widest line needs.
func writeStats(w io.Writer, output string, rows []*inspect.Stats) error {
	if output == "json" {
		if rows == nil {
			rows = []*inspect.Stats{}
		}
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(rows)
	}
	names := 24
	var table string
	for {
		table = statsTable(rows, names)
		widest := 0
		for _, line := range strings.Split(table, "\n") {
			widest = max(widest, len([]rune(line)))
		}
		if widest <= 80 || names <= 6 {
			break
		}
		names = max(6, names-(widest-80))
	}
	_, err := io.WriteString(w, table)
	return err
}

// statsTable renders the rows with names cut to n runes.
func statsTable(rows []*inspect.Stats, n int) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCPU\tMEM/LIMIT\tPEAK\tPIDS\tTHROTTLED\tOOM\tNET RX/TX")
	for _, r := range rows {
		if r.Cgroup == "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\n", short(r.Name, n))
			continue
		}
		var rx, tx uint64
		for _, i := range r.Interfaces {
			rx += i.RxBytes
			tx += i.TxBytes
		}
		cpu := fmt.Sprintf("%.1f%%", r.CPUPercent)
		if r.CPUPercent >= 99.95 {
			cpu = fmt.Sprintf("%.0f%%", r.CPUPercent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%d/%s\t%d/%s\t%d\t%s/%s\n",
			short(r.Name, n), cpu,
			bytesIEC(r.MemoryUsage), limit(r.MemoryLimit, bytesIEC), bytesIEC(r.MemoryPeak),
			r.PidsCurrent, limit(r.PidsLimit, func(v uint64) string { return fmt.Sprint(v) }),
			r.NrThrottled, seconds(r.ThrottledNs), r.OOMKills,
			bytesSI(rx), bytesSI(tx))
	}
	tw.Flush()
	return b.String()
}

// short cuts a name to n runes, marking the cut.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// limit prints a limit, "max" when there is none (0).
func limit(v uint64, f func(uint64) string) string {
	if v == 0 {
		return "max"
	}
	return f(v)
}

// bytesIEC prints a memory size in powers of 1024 with the manifest's
// letters (50M is 52428800 bytes, as memory: 50M writes it).
func bytesIEC(v uint64) string {
	const unit = 1024
	if v < unit {
		return fmt.Sprintf("%dB", v)
	}
	f, i := float64(v), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return num(f) + string("KMGTP"[i])
}

// bytesSI prints a traffic count in powers of 1000, as docker stats does.
func bytesSI(v uint64) string {
	const unit = 1000
	if v < unit {
		return fmt.Sprintf("%dB", v)
	}
	f, i := float64(v), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return num(f) + string("kMGTP"[i]) + "B"
}

// num prints a scaled value with one decimal below 100, none above.
func num(f float64) string {
	if f >= 99.95 {
		return fmt.Sprintf("%.0f", f)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0")
}

// seconds prints nanoseconds as a short duration: 864ms, 12.3s, 45m, 27h.
func seconds(ns uint64) string {
	d := time.Duration(ns)
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 100*time.Second:
		return num(d.Seconds()) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%dh", int(d.Hours()))
}
