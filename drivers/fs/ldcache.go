//go:build linux

package fs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ldCacheMagic opens the cache format ldconfig has written since glibc 2.32
// (and, after the old "ld.so-1.7.0" table, since 2.2): a header, an array of
// fixed-size entries, then the string table the entries point into.
const ldCacheMagic = "glibc-ld.so.cache1.1"

// ldCache is /etc/ld.so.cache read into memory: for each library name
// (soname), the paths ldconfig found for it, in the cache's order, which is
// the order ld.so tries them.
type ldCache map[string][]string

// parseLdCache reads the glibc-ld.so.cache1.1 format (glibc's
// sysdeps/generic/dl-cache.h, struct cache_file_new):
//
//	char magic[17] "glibc-ld.so.cache"; char version[3] "1.1";
//	uint32 nlibs; uint32 len_strings; uint8 flags; uint8 pad[3];
//	uint32 extension_offset; uint32 unused[3];       (48 bytes)
//	struct { int32 flags; uint32 key, value; uint32 osversion; uint64 hwcap; } libs[nlibs]
//
// key and value are offsets of NUL-terminated strings (the soname and the
// path) from the start of this header. Entries whose hwcap is set name
// glibc-hwcaps subfolders: ld.so picks those only on CPUs with the
// feature, so hutch skips them (and says so in docs/rootfs.md). The byte
// order is the host's (flags bit 0-1 of the header say which; ldconfig
// writes native order).
func parseLdCache(b []byte) (ldCache, error) {
	off := bytes.Index(b, []byte(ldCacheMagic))
	if off < 0 {
		return nil, fmt.Errorf("no %q header", ldCacheMagic)
	}
	h := b[off:]
	if len(h) < 48 {
		return nil, fmt.Errorf("header truncated")
	}
	le := binary.LittleEndian
	nlibs := le.Uint32(h[20:])
	if int64(nlibs)*24+48 > int64(len(h)) {
		return nil, fmt.Errorf("%d entries do not fit in %d bytes", nlibs, len(h))
	}
	str := func(o uint32) (string, bool) {
		if int64(o) >= int64(len(h)) {
			return "", false
		}
		s := h[o:]
		n := bytes.IndexByte(s, 0)
		if n < 0 {
			return "", false
		}
		return string(s[:n]), true
	}
	c := ldCache{}
	for i := uint32(0); i < nlibs; i++ {
		e := h[48+24*i:]
		flags := int32(le.Uint32(e[0:]))
		hwcap := le.Uint64(e[16:])
		// FLAG_ELF_LIBC6 (3) in the type byte: glibc libraries; libc5
		// and a.out entries are not for ld-linux.
		if flags&0xff != 3 || hwcap != 0 {
			continue
		}
		key, ok1 := str(le.Uint32(e[4:]))
		val, ok2 := str(le.Uint32(e[8:]))
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("entry %d: string offset out of range", i)
		}
		c[key] = append(c[key], val)
	}
	return c, nil
}

// readLdCache reads and parses the cache file; a missing file is an empty
// cache (ld.so then searches the default folders only).
func readLdCache(path string) (ldCache, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return ldCache{}, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := parseLdCache(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// readLdConf lists the library folders of ld.so.conf and of the files its
// `include` lines name (globs, relative to the including file's folder), in
// order, the way ldconfig reads them. `hwcap` lines are ignored. ld.so never
// reads this file itself: hutch searches these folders after the cache, so
// that a cache older than the configuration still finds a library.
func readLdConf(path string) ([]string, error) {
	dirs, _, err := readLdConfFiles(path)
	return dirs, err
}

// readLdConfFiles is readLdConf that also lists the files it read and the
// folders its include globs looked in: what a kept resolution must
// re-check (quick.go).
func readLdConfFiles(path string) ([]string, []string, error) {
	var dirs, files []string
	seen := map[string]bool{}
	var read func(p string, depth int) error
	read = func(p string, depth int) error {
		if depth > 8 {
			return fmt.Errorf("%s: includes nest deeper than 8", p)
		}
		files = append(files, p)
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					if !filepath.IsAbs(pat) {
						pat = filepath.Join(filepath.Dir(p), pat)
					}
					files = append(files, filepath.Dir(pat))
					ms, err := filepath.Glob(pat)
					if err != nil {
						return fmt.Errorf("%s: include %s: %w", p, pat, err)
					}
					for _, m := range ms {
						if err := read(m, depth+1); err != nil {
							return err
						}
					}
				}
			case "hwcap":
			default:
				for _, d := range fields {
					// An old syntax allowed "dir=TYPE".
					if i := strings.IndexByte(d, '='); i >= 0 {
						d = d[:i]
					}
					d = filepath.Clean(d)
					if filepath.IsAbs(d) && !seen[d] {
						seen[d] = true
						dirs = append(dirs, d)
					}
				}
			}
		}
		return sc.Err()
	}
	if err := read(path, 0); err != nil {
		return nil, nil, err
	}
	return dirs, files, nil
}
