package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"hutch/plan"
)

// StateVersion is the version of state.json's format.
const StateVersion = 1

// Record statuses. A record is written as pending (or deleting) before its
// step starts and as done after it ends, so that after a crash the store
// still names every object hutch may have made.
const (
	StatusPending  = "pending"  // a create, update or replace has started
	StatusDone     = "done"     // the object exists as Value says
	StatusDeleting = "deleting" // a delete has started
)

// Source is the manifest a container came from: the file's absolute path
// ("<stdin>" for standard input) and the sha256 of its bytes. Prune deletes
// the containers an earlier apply of the same path made.
type Source struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

// Record is one host object hutch made (or was making) for a container.
type Record struct {
	ID     string          `json:"id"`
	Kind   plan.Kind       `json:"kind"`
	Status string          `json:"status"`
	Value  json.RawMessage `json:"value"`
}

// Resource decodes the record's value.
func (r *Record) Resource() (plan.Resource, error) {
	res, err := plan.DecodeResource(r.Kind, r.Value)
	if err != nil {
		return nil, fmt.Errorf("state record %s: %w", r.ID, err)
	}
	return res, nil
}

// State is a container's state.json: where it came from and every host
// object hutch made for it, sorted by ID.
type State struct {
	Version   int    `json:"version"`
	Container string `json:"container"`
	// Kind is "" for a container, Network or Link for a lab's units.
	Kind      string   `json:"kind,omitempty"`
	Manifest  Source   `json:"manifest"`
	Resources []Record `json:"resources"`
}

// record returns the record with the given ID, or nil.
func (s *State) record(id string) *Record {
	for i := range s.Resources {
		if s.Resources[i].ID == id {
			return &s.Resources[i]
		}
	}
	return nil
}

// set adds or replaces the record of r with the given status.
func (s *State) set(r plan.Resource, status string) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("state record %s: %w", r.ID(), err)
	}
	if rec := s.record(r.ID()); rec != nil {
		rec.Kind, rec.Status, rec.Value = r.Kind(), status, v
		return nil
	}
	s.Resources = append(s.Resources, Record{ID: r.ID(), Kind: r.Kind(), Status: status, Value: v})
	sort.Slice(s.Resources, func(i, j int) bool { return s.Resources[i].ID < s.Resources[j].ID })
	return nil
}

// setStatus changes the status of a record, if there is one.
func (s *State) setStatus(id, status string) {
	if rec := s.record(id); rec != nil {
		rec.Status = status
	}
}

// remove drops the record with the given ID.
func (s *State) remove(id string) {
	for i := range s.Resources {
		if s.Resources[i].ID == id {
			s.Resources = append(s.Resources[:i], s.Resources[i+1:]...)
			return
		}
	}
}

func (s *State) clone() *State {
	c := *s
	c.Resources = make([]Record, len(s.Resources))
	copy(c.Resources, s.Resources)
	return &c
}

func (s *State) encode() ([]byte, error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", s.Container, err)
	}
	return append(data, '\n'), nil
}

// ErrNotFound is wrapped when the store has no state for a container.
var ErrNotFound = errors.New("not found")

// Store is the state store: one folder per container under the state root
// (plan.Options.BundleDir: config.json, rootfs/, logs, state.json), and one
// lock file per container under root/locks. It writes files only; it never
// touches any other part of the host.
type Store struct {
	opts plan.Options
	// noSync: writes are atomic but not fsynced (see WithoutSync, run.go).
	noSync bool
}

// NewStore returns the store of the given options' state root.
func NewStore(opts plan.Options) *Store { return &Store{opts: opts} }

// Options are the paths the store was made with.
func (s *Store) Options() plan.Options { return s.opts }

// Dir is a container's folder.
func (s *Store) Dir(container string) string { return s.opts.BundleDir(container) }

func (s *Store) statePath(container string) string {
	return filepath.Join(s.Dir(container), "state.json")
}

// ConfigPath is where a container's OCI config.json lives; the process
// driver reads it from there.
func (s *Store) ConfigPath(container string) string {
	return filepath.Join(s.Dir(container), "config.json")
}

// Load reads a container's state. It wraps ErrNotFound when there is none.
//
// It refuses a name that is no container's, a container folder that is a
// symlink, a state.json that is one (O_NOFOLLOW), and records that
// disagree with the container (checkRecords).
func (s *Store) Load(container string) (*State, error) {
	dir, err := s.dir(container)
	if err != nil {
		return nil, err
	}
	data, err := readNoFollow(s.statePath(container))
	if errors.Is(err, os.ErrNotExist) {
		if _, derr := os.Lstat(dir); derr == nil {
			// A folder without state.json: a crash during the very first
			// write, before any step ran. Nothing was made.
			return &State{Version: StateVersion, Container: container}, nil
		}
		return nil, fmt.Errorf("container %s: %w", container, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: read state: %w", container, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("container %s: %s: %w", container, s.statePath(container), err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("container %s: %s: state version %d, this hutch reads %d",
			container, s.statePath(container), st.Version, StateVersion)
	}
	if st.Container != container {
		return nil, fmt.Errorf("container %s: %s names container %q", container, s.statePath(container), st.Container)
	}
	if err := s.checkRecords(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// readNoFollow reads a file of the store, refusing a symlink at its path
// (open(2) with O_NOFOLLOW fails with ELOOP).
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("read %s: a symlink, which hutch does not follow", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Save writes a container's state atomically, and only when it differs from
// what is on disk, so an apply that changes nothing writes nothing.
func (s *Store) Save(st *State) error { return s.save(st, true) }

// save is Save; without durable it skips the fsyncs (see saver): a reader
// and a killed process still see the old state or the new one, but a power
// loss may bring back an older one.
func (s *Store) save(st *State, durable bool) error {
	data, err := st.encode()
	if err != nil {
		return err
	}
	_, err = s.writeIfChanged(st.Container, s.statePath(st.Container), data, durable)
	return err
}

// syncState makes the last write of a container's state.json durable:
// fsync(2) of the file and of its folder (for the rename).
func (s *Store) syncState(container string) error {
	if s.noSync {
		return nil
	}
	path := s.statePath(container)
	for _, p := range []string{path, filepath.Dir(path)} {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("container %s: sync: %w", container, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("container %s: sync %s: %w", container, p, err)
		}
	}
	return nil
}

// SaveConfig writes a container's config.json when its content differs.
func (s *Store) SaveConfig(container string, config []byte) (bool, error) {
	return s.writeIfChanged(container, s.ConfigPath(container), config, true)
}

func (s *Store) writeIfChanged(container, path string, data []byte, durable bool) (bool, error) {
	if _, err := s.dir(container); err != nil {
		return false, err
	}
	if old, err := readNoFollow(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("container %s: %w", container, err)
	}
	if err := writeFileAtomic(path, data, 0o600, durable && !s.noSync); err != nil {
		return false, fmt.Errorf("container %s: %w", container, err)
	}
	return true, nil
}

// WriteFileAtomic replaces path with data so that a reader, or the file after
// a crash, has either the old content or the new one, never a mix: it writes
// a temporary file in the same folder, fsyncs it, renames it over path
// (rename(2) is atomic within a filesystem) and fsyncs the folder so the
// rename itself survives a power loss.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(path, data, mode, true)
}

// writeFileAtomic is WriteFileAtomic; without durable it skips both
// fsyncs, and the rename is atomic for readers but may be lost, with the
// data, in a power loss.
func writeFileAtomic(path string, data []byte, mode os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync folder: %w", path, err)
	}
	return nil
}

// Containers lists the containers the store has a folder for, sorted.
func (s *Store) Containers() ([]string, error) {
	dir := filepath.Dir(s.Dir("x"))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state root: %w", err)
	}
	var names []string
	for _, e := range ents {
		// A folder whose name is no container's (a temporary ".x", or
		// anything else) is not hutch's: never listed, never touched.
		if e.IsDir() && CheckName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Remove deletes a container's folder. It refuses to cross into another
// filesystem (a rootfs overlay or a bind mount still mounted below it), so
// a failed unmount can never make it delete files through a mount.
func (s *Store) Remove(container string) error {
	dir, err := s.dir(container)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("container %s: remove state: %w", container, err)
	}
	dev := fi.Sys().(*syscall.Stat_t).Dev
	// state.json goes last: while anything else is left, the store still
	// says what the folder is.
	if err := removeTree(dir, dev, filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("container %s: remove state: %w", container, err)
	}
	if err := os.Remove(filepath.Join(dir, "state.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %s: remove state: %w", container, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %s: remove state: %w", container, err)
	}
	return nil
}

// removeTree removes the content of dir (not dir itself, and not keep),
// refusing any folder on another device than dev.
func removeTree(dir string, dev uint64, keep string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if p == keep {
			continue
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if fi.Sys().(*syscall.Stat_t).Dev != dev {
				return fmt.Errorf("%s is still a mount point", p)
			}
			if err := removeTree(p, dev, keep); err != nil {
				return err
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
