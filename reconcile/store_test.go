package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hutch/plan"
)

func TestWriteFileAtomicReadersSeeOldOrNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	a := bytes.Repeat([]byte("a"), 1<<16)
	b := bytes.Repeat([]byte("b"), 1<<17)
	if err := WriteFileAtomic(path, a, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 200; i++ {
			data := a
			if i%2 == 0 {
				data = b
			}
			if err := WriteFileAtomic(path, data, 0o600); err != nil {
				t.Error(err)
			}
		}
		close(done)
	})
	reads := 0
	for {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Fatal("no read happened")
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("temporary files left: %v", ents)
			}
			return
		default:
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("read a mix of old and new (%d bytes)", len(got))
		}
		reads++
	}
}

func TestSaveWritesOnlyWhenChanged(t *testing.T) {
	s := NewStore(plan.Options{StateRoot: t.TempDir()})
	st := &State{Version: StateVersion, Container: "web"}
	if err := st.set(&plan.Netns{Container: "web", Name: "n"}, StatusDone); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(s.statePath("web"))
	time.Sleep(10 * time.Millisecond)
	if err := s.Save(st.clone()); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(s.statePath("web"))
	if !fi1.ModTime().Equal(fi2.ModTime()) || !os.SameFile(fi1, fi2) {
		t.Error("an unchanged state was written again")
	}
	got, err := s.Load("web")
	if err != nil {
		t.Fatal(err)
	}
	r, err := got.Resources[0].Resource()
	if err != nil || r.(*plan.Netns).Name != "n" {
		t.Errorf("loaded %#v, %v", r, err)
	}
}

func TestRemoveRefusesAMountPointAndKeepsStateLast(t *testing.T) {
	s := NewStore(plan.Options{StateRoot: t.TempDir()})
	st := &State{Version: StateVersion, Container: "web"}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	dir := s.Dir("web")
	os.MkdirAll(filepath.Join(dir, "rootfs", "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "rootfs", "etc", "x"), []byte("x"), 0o644)
	if err := s.Remove("web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("folder left: %v", err)
	}
	if _, err := s.Load("web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("load after remove: %v", err)
	}
	// /dev/shm (or /proc) is another filesystem: a folder on it inside the
	// bundle stands for a rootfs still mounted.
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	other := "/proc/self"
	if err := os.Symlink(other, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("web"); err != nil {
		t.Fatalf("a symlink to another filesystem is not a mount: %v", err)
	}
}

func TestLockExcludesWaitsAndFailsFast(t *testing.T) {
	s := NewStore(plan.Options{StateRoot: t.TempDir()})
	l1, err := s.Lock("web", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock("web", true, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock with noWait: %v, want ErrLocked", err)
	}
	got := make(chan *Lock)
	waited := make(chan struct{})
	go func() {
		l, err := s.Lock("web", false, func() { close(waited) })
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	<-waited
	select {
	case <-got:
		t.Fatal("second lock taken while the first is held")
	default:
	}
	l1.Unlock()
	l2 := <-got
	l2.Unlock()
	other, err := s.Lock("other", true, nil)
	if err != nil {
		t.Fatalf("another container's lock: %v", err)
	}
	other.Unlock()
}

func TestLockRemovedWhileWaitingIsTakenAnew(t *testing.T) {
	s := NewStore(plan.Options{StateRoot: t.TempDir()})
	l1, err := s.Lock("web", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lock)
	waited := make(chan struct{})
	go func() {
		l, err := s.Lock("web", false, func() { close(waited) })
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	<-waited
	if err := l1.remove(); err != nil { // what delete does
		t.Fatal(err)
	}
	l2 := <-got
	defer l2.Unlock()
	// l2 must hold the lock on the file now at the path: a third locker
	// must find it taken.
	if _, err := s.Lock("web", true, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock after remove: %v, want ErrLocked (two holders)", err)
	}
}

// helperFault names the crash point of the helper process: "when:kind.action"
// (before:veth.create), as hutch's HUTCH_FAULT does.
const helperFault = "HUTCH_HELPER_FAULT"

// exitAt is the helper's Fault: at the point v names it exits with status
// 137, as if killed by SIGKILL, running no deferred function.
func exitAt(v string) Fault {
	when, point, _ := strings.Cut(v, ":")
	kind, action, _ := strings.Cut(point, ".")
	return func(w string, k plan.Kind, a string) {
		if w == when && string(k) == kind && a == action {
			os.Exit(137)
		}
	}
}

// TestHelperProcess is not a test: the crash tests run the test binary
// again with HUTCH_HELPER set, to apply or delete and exit as if killed at
// the point HUTCH_HELPER_FAULT names.
func TestHelperProcess(t *testing.T) {
	op := os.Getenv("HUTCH_HELPER")
	if op == "" {
		t.Skip("helper only")
	}
	root, hostDir := os.Getenv("HUTCH_HELPER_ROOT"), os.Getenv("HUTCH_HELPER_HOST")
	// Not newFakeHost: its t.TempDir would outlive this process, which
	// ends with os.Exit.
	h := &fakeHost{dir: hostDir, fail: map[string]error{}, force: fakeForce()}
	opts := plan.DefaultOptions()
	opts.StateRoot = root
	r := &Reconciler{Drivers: h.drivers(), Store: NewStore(opts), Out: os.Stdout, Fault: exitAt(os.Getenv(helperFault))}
	o := web("web")
	var err error
	if op == "update" {
		o.memory = 100 << 20
	}
	if op == "delete" {
		err = r.Delete(context.Background(), []string{"web"}, false)
	} else {
		err = r.Apply(context.Background(), []*Container{o.container(root)}, ApplyOptions{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestCrashAtEveryStepThenApplyConvergesAndDeleteLeavesNothing(t *testing.T) {
	kinds := []string{"rootfs", "netns", "veth", "address", "cgroup", "process"}
	type point struct{ op, fault string }
	var points []point
	for _, when := range []string{"before", "after"} {
		for _, k := range kinds {
			points = append(points, point{"apply", when + ":" + k + ".create"})
			points = append(points, point{"delete", when + ":" + k + ".delete"})
		}
		points = append(points, point{"update", when + ":cgroup.update"})
	}
	for _, p := range points {
		t.Run(p.op+"/"+p.fault, func(t *testing.T) {
			e := newEnv(t)
			o := web("web")
			if p.op != "apply" {
				e.mustApply(o.container(e.root))
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), "HUTCH_HELPER="+p.op, "HUTCH_HELPER_ROOT="+e.root,
				"HUTCH_HELPER_HOST="+e.host.dir, helperFault+"="+p.fault)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 137 {
				t.Fatalf("helper: %v, want exit 137\n%s", err, out)
			}
			e.mustApply(o.container(e.root))
			e.mustApply(o.container(e.root))
			if m := e.host.mutations(); len(m) != 0 {
				t.Fatalf("not converged after the crash: %q\n%s", m, e.out.String())
			}
			if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
				t.Fatal(err)
			}
			if objs := e.host.objects(); len(objs) != 0 {
				t.Errorf("delete left %q", objs)
			}
			ents, _ := os.ReadDir(filepath.Join(e.root, "containers"))
			if len(ents) != 0 {
				t.Errorf("state left: %v", ents)
			}
		})
	}
}

func TestCrashDuringDeleteThenDeleteLeavesNothing(t *testing.T) {
	for _, k := range []string{"process", "address", "veth", "netns", "cgroup", "rootfs"} {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t)
			e.mustApply(web("web").container(e.root))
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), "HUTCH_HELPER=delete", "HUTCH_HELPER_ROOT="+e.root,
				"HUTCH_HELPER_HOST="+e.host.dir, helperFault+"=after:"+k+".delete")
			if out, err := cmd.CombinedOutput(); !strings.Contains(fmt.Sprint(err), "137") {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			if err := e.r.Delete(context.Background(), []string{"web"}, false); err != nil {
				t.Fatal(err)
			}
			if objs := e.host.objects(); len(objs) != 0 {
				t.Errorf("delete left %q", objs)
			}
			if _, err := os.Stat(e.r.Store.Dir("web")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state folder left: %v", err)
			}
		})
	}
}

func TestConcurrentApplyAndDeleteEndInOneOfTheTwoStates(t *testing.T) {
	for i := range 10 {
		e := newEnv(t)
		o := web("web")
		r2 := &Reconciler{Drivers: e.host.drivers(), Store: e.r.Store, Out: &bytes.Buffer{}}
		var wg sync.WaitGroup
		var applyErr, deleteErr error
		wg.Go(func() { applyErr = e.r.Apply(context.Background(), []*Container{o.container(e.root)}, ApplyOptions{}) })
		wg.Go(func() { deleteErr = r2.Delete(context.Background(), []string{"web"}, true) })
		wg.Wait()
		if applyErr != nil || deleteErr != nil {
			t.Fatalf("run %d: apply %v, delete %v", i, applyErr, deleteErr)
		}
		objs := e.host.objects()
		_, stErr := e.r.Store.Load("web")
		switch len(objs) {
		case 0:
			if !errors.Is(stErr, ErrNotFound) {
				t.Errorf("run %d: host empty but state %v", i, stErr)
			}
		case 7:
			if stErr != nil {
				t.Errorf("run %d: host applied but state %v", i, stErr)
			}
		default:
			t.Errorf("run %d: in between: %q", i, objs)
		}
	}
}

func TestTwoAppliesAtOnceEndCorrect(t *testing.T) {
	e := newEnv(t)
	r2 := &Reconciler{Drivers: e.host.drivers(), Store: e.r.Store, Out: &bytes.Buffer{}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = e.r.Apply(context.Background(), []*Container{web("web").container(e.root)}, ApplyOptions{})
	})
	wg.Go(func() {
		errs[1] = r2.Apply(context.Background(), []*Container{web("web").container(e.root)}, ApplyOptions{})
	})
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	creates := 0
	for _, m := range e.host.mutations() {
		if strings.HasPrefix(m, "apply create") {
			creates++
		}
	}
	if creates != 7 {
		t.Errorf("%d creates over both applies, want 7: %q", creates, e.host.mutations())
	}
}
