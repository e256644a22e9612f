package reconcile

import "sync"

// saver keeps one container's state in memory and writes it to the store in
// the background, one write at a time, coalescing the updates made while a
// write is in flight (group commit). Steps that run at the same time then
// share one write instead of queueing for one each. The writes in between
// skip fsync(2): flush makes the last one durable. What a power loss in
// between could lose is already covered by the intent prepare wrote (every
// resource a run may make is recorded as pending before the first step,
// with one synced write), and the kernel objects themselves do not outlive
// a reboot. A killed hutch loses nothing: a rename is atomic for every
// reader without an fsync. flush waits until what was updated is on disk.
type saver struct {
	store    *Store
	mu       sync.Mutex
	idle     *sync.Cond
	st       *State
	dirty    bool
	busy     bool
	unsynced bool // a write since the last fsync
	err      error
}

func newSaver(store *Store, st *State) *saver {
	s := &saver{store: store, st: st}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// update changes the state and schedules a write.
func (s *saver) update(f func(*State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := f(s.st); err != nil {
		return err
	}
	s.dirty = true
	if !s.busy {
		s.busy = true
		go s.loop()
	}
	return nil
}

// sync is update followed by flush: the state is on disk when it returns.
func (s *saver) sync(f func(*State) error) error {
	if err := s.update(f); err != nil {
		return err
	}
	return s.flush()
}

func (s *saver) loop() {
	s.mu.Lock()
	for s.dirty {
		snap := s.st.clone()
		s.dirty = false
		s.mu.Unlock()
		err := s.store.save(snap, false)
		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = err
		}
		s.unsynced = true
	}
	s.busy = false
	s.idle.Broadcast()
	s.mu.Unlock()
}

// flush waits for every scheduled write and returns the first error any
// write had.
func (s *saver) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy {
		s.idle.Wait()
	}
	if s.unsynced && s.err == nil {
		s.err = s.store.syncState(s.st.Container)
		s.unsynced = false
	}
	return s.err
}
