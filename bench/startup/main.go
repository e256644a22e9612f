// Command startup times whole processes, from the start (fork and exec) to
// the end of wait4: how long a command takes when a shell runs it. It is
// bench/startup.sh's clock, so that hutch's verbs are timed the same way as
// a bare Go binary built in the same run.
//
//	startup [-runs N] [-warmup N] LABEL=PATH[ ARG...] ...
//
// The commands run in turns (one run of each per round, the order rotated
// every round, so drift of the machine reaches all of them alike), stdin,
// stdout and stderr on /dev/null, and each must exit 0. The output is one
// line per command, tab-separated: label, runs, then median, p90, min and
// max in microseconds.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

type command struct {
	label string
	argv  []string
	times []time.Duration
}

func main() {
	runs := flag.Int("runs", 300, "timed runs of each command")
	warmup := flag.Int("warmup", 20, "untimed runs of each command first (page cache, CPU frequency)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: startup [-runs N] [-warmup N] LABEL=PATH[ ARG...] ...")
		os.Exit(2)
	}
	var cmds []*command
	for _, a := range flag.Args() {
		label, line, ok := strings.Cut(a, "=")
		argv := strings.Fields(line)
		if !ok || label == "" || len(argv) == 0 {
			fmt.Fprintf(os.Stderr, "startup: %q: want LABEL=PATH[ ARG...]\n", a)
			os.Exit(2)
		}
		cmds = append(cmds, &command{label: label, argv: argv})
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
	attr := &os.ProcAttr{Files: []*os.File{null, null, null}}
	for round := 0; round < *warmup+*runs; round++ {
		for i := range cmds {
			c := cmds[(round+i)%len(cmds)]
			d, err := once(c.argv, attr)
			if err != nil {
				fmt.Fprintf(os.Stderr, "startup: %s: %v\n", c.label, err)
				os.Exit(1)
			}
			if round >= *warmup {
				c.times = append(c.times, d)
			}
		}
	}
	for _, c := range cmds {
		slices.Sort(c.times)
		n := len(c.times)
		us := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }
		fmt.Printf("%s\t%d\t%s\t%s\t%s\t%s\n", c.label, n,
			us(quantile(c.times, 0.5)), us(quantile(c.times, 0.9)), us(c.times[0]), us(c.times[n-1]))
	}
}

// once runs argv and returns the time from before the start to after the
// wait.
func once(argv []string, attr *os.ProcAttr) (time.Duration, error) {
	t0 := time.Now()
	p, err := os.StartProcess(argv[0], argv, attr)
	if err != nil {
		return 0, err
	}
	st, err := p.Wait()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if !st.Success() {
		return 0, fmt.Errorf("%s: %v", strings.Join(argv, " "), st)
	}
	return d, nil
}

// quantile is the q-quantile of sorted times, interpolated between the two
// nearest samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i] + time.Duration(f*float64(sorted[i+1]-sorted[i]))
}
