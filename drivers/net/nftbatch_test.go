package net

import (
	"errors"
	"sync"
	"testing"
	"time"

	"hutch/plan"
)

// Deletes that arrive while one is committed go to the kernel together, and
// each caller gets its own rule's result.
func TestNftDeletesThatWaitAreBatched(t *testing.T) {
	var b nftBatcher
	release := make(chan struct{})
	var mu sync.Mutex
	var commits [][]string
	commit := func(ws []*plan.NftRule) []error {
		mu.Lock()
		var names []string
		for _, w := range ws {
			names = append(names, w.Name)
		}
		commits = append(commits, names)
		first := len(commits) == 1
		mu.Unlock()
		if first {
			<-release // the others queue meanwhile
		}
		errs := make([]error, len(ws))
		for i, w := range ws {
			if w.Name == "bad" {
				errs[i] = errors.New("bad rule")
			}
		}
		return errs
	}
	results := make(map[string]error)
	var rmu sync.Mutex
	var wg sync.WaitGroup
	call := func(name string) {
		defer wg.Done()
		err := b.run(&plan.NftRule{Name: name}, commit)
		rmu.Lock()
		results[name] = err
		rmu.Unlock()
	}
	wg.Add(1)
	go call("first")
	for {
		mu.Lock()
		n := len(commits)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, name := range []string{"a", "bad", "c"} {
		wg.Add(1)
		go call(name)
	}
	for {
		b.mu.Lock()
		n := len(b.pending)
		b.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if len(commits) != 2 || len(commits[0]) != 1 || len(commits[1]) != 3 {
		t.Errorf("commits %q, want [first] then the three that waited together", commits)
	}
	for name, err := range results {
		if (err != nil) != (name == "bad") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(results) != 4 {
		t.Errorf("results %v, want 4", results)
	}
}
