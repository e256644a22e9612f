package reconcile

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hutch/plan"
)

// fakeForeground is the fake process driver with Foreground: it checks what
// the store says when the process starts, calls started, and "runs" the
// process by calling during (if set) before it returns code.
type fakeForeground struct {
	*fakeDriver
	t        *testing.T
	store    func() *Store
	code     int
	err      error
	during   func()
	calls    int
	recorded map[string]string // the store's record statuses at start
}

func (f *fakeForeground) Foreground(ctx context.Context, p *plan.Process, stdin io.Reader, stdout, stderr io.Writer,
	signals <-chan os.Signal, started func() error) (int, error) {
	f.calls++
	f.h.record("foreground " + p.ID())
	if f.err != nil {
		return -1, f.err
	}
	st, err := f.store().Load(p.Container)
	if err != nil {
		f.t.Fatalf("foreground: the store has no state: %v", err)
	}
	f.recorded = map[string]string{}
	for _, rec := range st.Resources {
		f.recorded[rec.ID] = rec.Status
	}
	if err := started(); err != nil {
		return -1, err
	}
	if f.during != nil {
		f.during()
	}
	return f.code, nil
}

func newRunEnv(t *testing.T) (*env, *fakeForeground) {
	e := newEnv(t)
	fg := &fakeForeground{fakeDriver: e.r.Drivers[plan.KindProcess].(*fakeDriver), t: t, store: func() *Store { return e.r.Store }}
	e.r.Drivers[plan.KindProcess] = fg
	return e, fg
}

func TestRunConvergesAllButTheProcessThenRunsItInTheForeground(t *testing.T) {
	e, fg := newRunEnv(t)
	c := web("web").container(e.root)
	fg.code = 7
	fg.during = func() {
		// The lock is free while the process runs.
		l, err := e.r.Store.Lock("web", true, nil)
		if err != nil {
			t.Errorf("lock while the process runs: %v", err)
			return
		}
		l.Unlock()
		if st := e.state("web"); st.record("process/web").Status != StatusDone {
			t.Errorf("process record while it runs: %+v", st.record("process/web"))
		}
	}
	code, err := e.r.Run(context.Background(), c, RunOptions{})
	if err != nil || code != 7 {
		t.Fatalf("run: %d, %v\n%s", code, err, e.out.String())
	}
	muts := e.host.mutations()
	if !slices.Contains(muts, "foreground process/web") {
		t.Errorf("the process was not run in the foreground: %v", muts)
	}
	muts = slices.DeleteFunc(muts, func(m string) bool { return strings.HasPrefix(m, "foreground ") })
	if slices.ContainsFunc(muts, func(m string) bool { return strings.HasSuffix(m, "process/web") }) {
		t.Errorf("the process driver's Apply was called: %v", muts)
	}
	if len(muts) != 6 || fg.calls != 1 {
		t.Errorf("steps %v and %d foreground calls; want the 6 other creates and 1", muts, fg.calls)
	}
	// Every record, the process's too, was written before the process
	// started: done for what was made, pending for the process.
	for _, r := range c.Resources {
		want := StatusDone
		if r.Kind() == plan.KindProcess {
			want = StatusPending
		}
		if got := fg.recorded[r.ID()]; got != want {
			t.Errorf("record %s at start: %q, want %q", r.ID(), got, want)
		}
	}
	// Without Remove, the container stays as made; a second run makes
	// nothing anew and runs the process again.
	if len(e.host.objects()) != 6 {
		t.Errorf("host objects %v", e.host.objects())
	}
	e.host.reset()
	if _, err := e.r.Run(context.Background(), c, RunOptions{}); err != nil || len(e.host.mutations()) != 1 || fg.calls != 2 {
		t.Errorf("second run: %v, steps %v, %d foreground calls", err, e.host.mutations(), fg.calls)
	}
}

func TestRunRemoveDeletesEverythingAfterTheProcess(t *testing.T) {
	e, _ := newRunEnv(t)
	c := web("web").container(e.root)
	code, err := e.r.Run(context.Background(), c, RunOptions{Remove: true})
	if err != nil || code != 0 {
		t.Fatalf("run --rm: %d, %v\n%s", code, err, e.out.String())
	}
	if objs := e.host.objects(); len(objs) != 0 {
		t.Errorf("left on the host: %v", objs)
	}
	if _, err := os.Stat(e.r.Store.Dir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state folder: %v", err)
	}
	if _, err := os.Stat(e.r.Store.lockPath("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file: %v", err)
	}
	if e.r.Store.noSync {
		t.Error("the reconciler keeps the store without fsync after Run")
	}
}

func TestRunRemoveAfterAFailedStepOrStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failAt int
		start  error
	}{
		{"step", 3, nil},
		{"start", 0, errors.New("exec: no such file")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fg := newRunEnv(t)
			e.host.failAt, fg.err = tc.failAt, tc.start
			_, err := e.r.Run(context.Background(), web("web").container(e.root), RunOptions{Remove: true})
			if err == nil {
				t.Fatal("no error")
			}
			if objs := e.host.objects(); len(objs) != 0 {
				t.Errorf("left on the host: %v", objs)
			}
			if _, err := os.Stat(e.r.Store.Dir("web")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state folder: %v", err)
			}
		})
	}
}

func TestRunRefusesARunningProcess(t *testing.T) {
	e, fg := newRunEnv(t)
	c := web("web").container(e.root)
	e.mustApply(c)
	e.host.reset()
	_, err := e.r.Run(context.Background(), c, RunOptions{Remove: true})
	if !errors.Is(err, ErrRunning) {
		t.Fatalf("run of a running container: %v", err)
	}
	if muts := e.host.mutations(); len(muts) != 0 || fg.calls != 0 {
		t.Errorf("steps %v, %d foreground calls", muts, fg.calls)
	}
	if len(e.host.objects()) != 7 {
		t.Errorf("host objects %v", e.host.objects())
	}
}

// TestRunRemoveLeavesALockedContainer: when another hutch holds the lock as
// the process ends (a delete that stopped it, an apply replacing it), --rm
// leaves the container to it.
func TestRunRemoveLeavesALockedContainer(t *testing.T) {
	e, fg := newRunEnv(t)
	var other *Lock
	fg.during = func() {
		var err error
		if other, err = e.r.Store.Lock("web", true, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.r.Run(context.Background(), web("web").container(e.root), RunOptions{Remove: true})
	other.Unlock()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(e.host.objects()) != 6 || !strings.Contains(e.out.String(), "another hutch is working on it") {
		t.Errorf("host objects %v; output:\n%s", e.host.objects(), e.out.String())
	}
}

// notifyWriter calls seen once when something written contains want.
type notifyWriter struct {
	mu   sync.Mutex
	want string
	seen chan struct{}
	done bool
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && strings.Contains(string(p), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

// A Ctrl-C while hutch run waits for another hutch to finish with the
// container ends the wait: nothing is made, and the lock the wait would
// have taken is released once the other hutch lets go.
func TestRunStopsWaitingForTheLockOnCtrlC(t *testing.T) {
	e, fg := newRunEnv(t)
	c := web("web").container(e.root)
	held, err := e.r.Store.Lock("web", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &notifyWriter{want: "waiting", seen: make(chan struct{})}
	e.r.Out = w
	sigs := make(chan os.Signal, 1)
	res := make(chan error, 1)
	go func() {
		_, err := e.r.Run(context.Background(), c, RunOptions{Signals: sigs,
			Interrupts: func(s os.Signal) bool { return s == syscall.SIGINT }})
		res <- err
	}()
	select {
	case <-w.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("hutch run never said it waits for the lock")
	}
	// A signal that does not ask to end (Interrupts says no) is dropped.
	sigs <- syscall.SIGUSR1
	select {
	case err := <-res:
		t.Fatalf("SIGUSR1 ended the wait for the lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	sigs <- syscall.SIGINT
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "interrupt") {
			t.Errorf("run interrupted while waiting: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Ctrl-C did not end the wait for the lock")
	}
	if fg.calls != 0 || len(e.host.mutations()) != 0 {
		t.Errorf("an interrupted run made %v (%d foreground calls)", e.host.mutations(), fg.calls)
	}
	held.Unlock()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		l, err := e.r.Store.Lock("web", true, nil)
		if err == nil {
			l.Unlock()
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the lock stays taken after the interrupted wait: %v", err)
		}
	}
}
