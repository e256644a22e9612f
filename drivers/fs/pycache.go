//go:build linux

package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Asking python where it lives costs a process start (about 18 ms for
// Debian's python3, 110 ms through a pyenv shim), on every apply, plan and
// no-op. The answer depends only on the interpreter file and on a
// pyvenv.cfg beside it or one folder up (python runs with -E -s, so no
// environment variable changes it). So when the name leads, through
// symlinks, to an ELF file, the answer is kept on disk under
// <stateRoot>/cache/python/, keyed by the identity of the name, the
// interpreter file (device, inode, size, mtime, ctime) and the pyvenv.cfg
// files. A script (a pyenv shim, whose answer follows .python-version files
// anywhere) is always asked.

// pythonKey returns the cache key of the interpreter at p, or "" when its
// answer must not be cached.
func pythonKey(p string) string {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	f, err := os.Open(real)
	if err != nil {
		return ""
	}
	magic := make([]byte, 4)
	_, err = f.ReadAt(magic, 0)
	f.Close()
	if err != nil || string(magic) != "\x7fELF" {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", p, real)
	dir := filepath.Dir(p)
	for _, q := range []string{real, filepath.Join(dir, "pyvenv.cfg"), filepath.Join(filepath.Dir(dir), "pyvenv.cfg")} {
		var st unix.Stat_t
		if unix.Stat(q, &st) != nil {
			fmt.Fprintf(h, "%s absent\x00", q)
			continue
		}
		fmt.Fprintf(h, "%s %d %d %d %d.%d %d.%d\x00", q, st.Dev, st.Ino, st.Size,
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *resolver) pythonCacheFile(key string) string {
	return filepath.Join(r.cacheDir, "python", key+".json")
}

// cachedPython returns the kept answer for key, or nil.
func (r *resolver) cachedPython(key string) *pythonInfo {
	if r.cacheDir == "" || key == "" {
		return nil
	}
	data, err := os.ReadFile(r.pythonCacheFile(key))
	if err != nil {
		return nil
	}
	pi := &pythonInfo{}
	if json.Unmarshal(data, pi) != nil || !filepath.IsAbs(pi.Executable) || !filepath.IsAbs(pi.Stdlib) {
		return nil
	}
	return pi
}

// keepPython writes the answer for key atomically (temporary file, rename);
// a failure only costs the next command a question.
func (r *resolver) keepPython(key string, pi *pythonInfo) {
	if r.cacheDir == "" || key == "" {
		return
	}
	data, err := json.Marshal(pi)
	if err != nil {
		return
	}
	p := r.pythonCacheFile(key)
	if os.MkdirAll(filepath.Dir(p), 0o700) != nil {
		return
	}
	tmp := p + ".tmp" + fmt.Sprint(os.Getpid())
	if os.WriteFile(tmp, data, 0o600) != nil {
		os.Remove(tmp)
		return
	}
	if os.Rename(tmp, p) != nil {
		os.Remove(tmp)
	}
}
