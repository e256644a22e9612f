package spec

import (
	"fmt"
	"sort"
	"strings"
)

// orchestrationChecks are the checks of health checks and dependsOn.
func orchestrationChecks(m *Manifest) Errors {
	var errs Errors
	for _, c := range m.Containers {
		errs = append(errs, checkHealthCheck(c)...)
		errs = append(errs, checkDependsOn(m, c)...)
	}
	return append(errs, checkDependencyCycles(m)...)
}

// checkHealthCheck: a health check is exactly one of http, tcp and exec.
func checkHealthCheck(c *Container) Errors {
	h := c.Spec.HealthCheck
	if h == nil {
		return nil
	}
	var kinds []string
	if h.HTTP != nil {
		kinds = append(kinds, "http")
	}
	if h.TCP != nil {
		kinds = append(kinds, "tcp")
	}
	if h.Exec != nil {
		kinds = append(kinds, "exec")
	}
	switch len(kinds) {
	case 0:
		return Errors{c.errorAt("spec.healthCheck", "a health check says what to check (expected one of http, tcp or exec)")}
	case 1:
		return nil
	}
	return Errors{c.errorAt("spec.healthCheck."+kinds[1], fmt.Sprintf("a health check is one kind, and this one is %s (expected one of http, tcp or exec)", strings.Join(kinds, " and ")))}
}

// checkDependsOn: each dependency is another container of the manifest,
// named once, and one that has a health check when it must be healthy.
func checkDependsOn(m *Manifest, c *Container) Errors {
	var errs Errors
	seen := map[string]bool{}
	for i, d := range c.Spec.DependsOn {
		at := fmt.Sprintf("spec.dependsOn[%d]", i)
		if !isDNSLabel(d.Name) {
			continue
		}
		if d.Name == c.Metadata.Name {
			errs = append(errs, c.errorAt(at+".name", fmt.Sprintf("container %q depends on itself (expected another container of the manifest)", d.Name)))
			continue
		}
		if seen[d.Name] {
			errs = append(errs, c.errorAt(at+".name", fmt.Sprintf("container %q is named twice in dependsOn (expected each once)", d.Name)))
			continue
		}
		seen[d.Name] = true
		dep := m.container(d.Name)
		if dep == nil {
			errs = append(errs, c.errorAt(at+".name", fmt.Sprintf("no container %q in the manifest (expected %s)", d.Name, containerNames(m, c))))
			continue
		}
		if d.Condition == "healthy" && dep.Spec.HealthCheck == nil {
			errs = append(errs, c.errorAt(at+".condition", fmt.Sprintf("container %q has no healthCheck, so it never becomes healthy (expected condition started, or a healthCheck on %s)", d.Name, d.Name)))
		}
	}
	return errs
}

// containerNames lists the containers of m other than c, for a message.
func containerNames(m *Manifest, c *Container) string {
	var ns []string
	for _, o := range m.Containers {
		if o != c {
			ns = append(ns, o.Metadata.Name)
		}
	}
	if len(ns) == 0 {
		return "a container of a document applied together with this one"
	}
	sort.Strings(ns)
	return "one of " + strings.Join(ns, ", ")
}

// checkDependencyCycles: dependsOn has no cycle, which would leave every
// container on it waiting for another. A cycle is reported once, at the
// dependency of its first container (in name order) that closes it, with
// the positions of every edge.
func checkDependencyCycles(m *Manifest) Errors {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []*Container
	var errs Errors
	var visit func(c *Container)
	visit = func(c *Container) {
		state[c.Metadata.Name] = onPath
		path = append(path, c)
		for i, d := range c.Spec.DependsOn {
			dep := m.container(d.Name)
			if dep == nil || dep == c {
				continue
			}
			switch state[d.Name] {
			case unseen:
				visit(dep)
			case onPath:
				errs = append(errs, cycleError(path, dep, c, i))
			}
		}
		path = path[:len(path)-1]
		state[c.Metadata.Name] = done
	}
	cs := append([]*Container(nil), m.Containers...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Metadata.Name < cs[j].Metadata.Name })
	for _, c := range cs {
		if isDNSLabel(c.Metadata.Name) && state[c.Metadata.Name] == unseen {
			visit(c)
		}
	}
	return errs
}

// cycleError describes the cycle from dep along path to last, whose
// dependency i names dep again.
func cycleError(path []*Container, dep, last *Container, i int) *Error {
	start := 0
	for j, c := range path {
		if c == dep {
			start = j
		}
	}
	var names, edges []string
	for j, c := range path[start:] {
		names = append(names, c.Metadata.Name)
		next := dep
		if start+j+1 < len(path) {
			next = path[start+j+1]
		}
		for k, d := range c.Spec.DependsOn {
			if d.Name == next.Metadata.Name {
				at := fmt.Sprintf("spec.dependsOn[%d]", k)
				pos := c.Source.Pos(at)
				edges = append(edges, fmt.Sprintf("%s:%d:%d", c.Source.File, pos.Line, pos.Col))
				break
			}
		}
	}
	names = append(names, dep.Metadata.Name)
	return last.errorAt(fmt.Sprintf("spec.dependsOn[%d].name", i), fmt.Sprintf("dependsOn makes a cycle %s (at %s), so none of them could start (expected an order without a cycle)", strings.Join(names, " -> "), strings.Join(edges, ", ")))
}
