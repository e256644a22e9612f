//go:build linux

package inspect

import (
	"errors"
	"fmt"
	"time"

	cgroupdrv "hutch/drivers/cgroup"
	netdrv "hutch/drivers/net"
	"hutch/plan"
)

// Stats are one container's counters, a row of hutch stats and its JSON
// form. Every number is what a kernel file or netlink reports at the time
// of reading but CPUPercent, which the function CPUPercent works out from
// two readings: the CPU time used between them divided by the time between
// them.
type Stats struct {
	Name   string `json:"name"`
	Cgroup string `json:"cgroup"` // path under each hierarchy's root
	// Files names the cgroup folder of each controller, so that the
	// numbers can be read by hand (cat .../memory.usage_in_bytes).
	Files      map[string]string `json:"cgroupDirs"`
	CPUPercent float64           `json:"cpuPercent"`
	cgroupdrv.Stats
	Interfaces []InterfaceStats `json:"interfaces"`
	Error      string           `json:"error,omitempty"`

	at time.Time // when the CPU counter was read
}

// InterfaceStats are the counters of one of the container's interfaces,
// as the container sees it (received = sent to the container).
type InterfaceStats struct {
	Netns string `json:"netns"`
	Name  string `json:"name"`
	netdrv.LinkStats
}

// Stats returns a row per named container, or per container of the store
// when none is named (networks and links have no cgroup). A container whose
// numbers cannot be read keeps its row, with the error in it, and the
// error is returned too.
func (r *Reader) Stats(names []string) ([]*Stats, []error) {
	if len(names) == 0 {
		all, err := r.Store.Containers()
		if err != nil {
			return nil, []error{err}
		}
		for _, n := range all {
			if st, err := r.Store.Load(n); err == nil && st.Kind != "" {
				continue
			}
			names = append(names, n)
		}
	}
	var rows []*Stats
	var errs []error
	for _, n := range names {
		row, err := r.containerStats(n)
		if err != nil {
			if row == nil {
				errs = append(errs, err)
				continue
			}
			row.Error = err.Error()
			errs = append(errs, err)
		}
		rows = append(rows, row)
	}
	return rows, errs
}

// containerStats reads one container's counters: the cgroup and the veth
// peers that its state record names (what hutch made for it), read from
// the kernel now.
func (r *Reader) containerStats(name string) (*Stats, error) {
	st, err := r.Store.Load(name)
	if err != nil {
		return nil, err
	}
	row := &Stats{Name: name, Interfaces: []InterfaceStats{}}
	var errs []error
	for _, rec := range st.Resources {
		res, err := rec.Resource()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch res := res.(type) {
		case *plan.Cgroup:
			row.Cgroup = res.Path
			row.Files = r.Cgroup.Dirs(res.Path)
			row.at = time.Now()
			cs, err := r.Cgroup.Stats(res.Path)
			if cs != nil {
				row.Stats = *cs
			}
			errs = append(errs, err)
		case *plan.Veth:
			ls, err := r.Net.LinkStats(res.Netns, res.Peer.Name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			row.Interfaces = append(row.Interfaces, InterfaceStats{Netns: res.Netns, Name: res.Peer.Name, LinkStats: *ls})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return row, fmt.Errorf("container %s: %w", name, err)
	}
	return row, nil
}

// CPUPercent sets each row's CPU % from the CPU time its cgroup used since
// the previous reading: 100% is one CPU busy all the time.
func CPUPercent(rows, prev []*Stats) {
	old := map[string]*Stats{}
	for _, p := range prev {
		old[p.Name] = p
	}
	for _, r := range rows {
		p := old[r.Name]
		if p == nil || p.at.IsZero() || r.at.IsZero() || r.CPUUsageNs < p.CPUUsageNs {
			continue
		}
		if dt := r.at.Sub(p.at); dt > 0 {
			r.CPUPercent = float64(r.CPUUsageNs-p.CPUUsageNs) / float64(dt.Nanoseconds()) * 100
		}
	}
}
