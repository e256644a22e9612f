//go:build linux

package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// writeFile writes one value to a cgroup interface file. The file is never
// created: cgroupfs creates interface files itself, and a missing one means
// the controller is not there.
func writeFile(dir, name, val string) error {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(val)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		// The kernel's answer (EINVAL, EBUSY) is the news; the path is
		// said once.
		return fmt.Errorf("write %s %q: %w", p, val, bare(err))
	}
	return nil
}

// bare drops the path an *os.PathError repeats, keeping the errno.
func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readFile reads a cgroup interface file, without its trailing newline.
func readFile(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, bare(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// unlimitedV1 is the smallest value hutch reads as "no limit" in a v1
// counter file: the kernel shows an unset limit as PAGE_COUNTER_MAX pages
// (9223372036854771712 with 4 KiB pages), never as -1.
const unlimitedV1 = 1 << 62

// readInt reads a file holding one integer; "max" (v2) reads as -1.
func readInt(dir, name string) (int64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// v1 counters can exceed int64 on no architecture, but parse them as
		// unsigned before giving up.
		u, uerr := strconv.ParseUint(s, 10, 64)
		if uerr != nil {
			return 0, fmt.Errorf("read %s: %w", filepath.Join(dir, name), err)
		}
		return int64(min(u, math.MaxInt64)), nil
	}
	return v, nil
}

// readKeyed reads a flat keyed file ("key value" per line: memory.events,
// memory.oom_control, cpu.stat).
func readKeyed(dir, name string) (map[string]uint64, error) {
	p := filepath.Join(dir, name)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, bare(err))
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return m, nil
}

// Weight (v2 cpu.weight, 1..10000, default 100) and shares (v1 cpu.shares,
// 2..262144, default 1024) are converted the way runc (opencontainers/cgroups)
// converts them since 2025: log10(weight) is a quadratic function of
// log2(shares) that maps min to min, default to default and max to max:
//
//	log10(w) = (l² + 125·l)/612 - 7/34, l = log2(shares)
//
// runc only goes from shares to weight; hutch needs the inverse for v1 and
// picks the shares value that converts back to exactly the weight asked, so
// that a weight read back from cpu.shares equals the one written.

// SharesToWeight converts a v1 cpu.shares value to a v2 cpu.weight.
func SharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	exp := (l*l+125*l)/612 - 7.0/34.0
	// The tolerance keeps 1024 (exactly 10^2 on paper) from rounding up to
	// 101 through a floating-point error.
	return uint64(math.Ceil(math.Pow(10, exp) - 1e-9))
}

// WeightToShares converts a v2 cpu.weight to the v1 cpu.shares value that
// SharesToWeight maps back to it.
func WeightToShares(weight uint64) uint64 {
	switch {
	case weight == 0:
		return 0
	case weight <= 1:
		return 2
	case weight >= 10000:
		return 262144
	}
	// Solve l² + 125·l - 612·(log10(w) + 7/34) = 0 for the positive root.
	c := 612 * (math.Log10(float64(weight)) + 7.0/34.0)
	l := (-125 + math.Sqrt(125*125+4*c)) / 2
	s := uint64(math.Round(math.Exp2(l)))
	// Ceil in SharesToWeight makes a band of shares map to each weight;
	// walk to the nearest member of the band.
	for SharesToWeight(s) > weight && s > 2 {
		s--
	}
	for SharesToWeight(s) < weight && s < 262144 {
		s++
	}
	return s
}

// cpuList parses a cpuset list ("0-3,5") into a canonical form ("0-3,5"), so
// that "0,1" and "0-1" compare equal. An unparsable list is returned as is.
func cpuList(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var ids []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return s
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 1<<16 {
				return s
			}
		}
		for i := a; i <= b; i++ {
			if !seen[i] {
				seen[i] = true
				ids = append(ids, i)
			}
		}
	}
	slices.Sort(ids)
	var out []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j == i {
			out = append(out, strconv.Itoa(ids[i]))
		} else {
			out = append(out, strconv.Itoa(ids[i])+"-"+strconv.Itoa(ids[j]))
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}
