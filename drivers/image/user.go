//go:build linux

package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// errNotInImage is ReadFile's answer for a path no layer holds (or an
// upper layer deleted).
var errNotInImage = errors.New("not in the image")

// maxUserDB is the most of /etc/passwd or /etc/group ReadFile keeps.
const maxUserDB = 4 << 20

// ReadFile returns the content of the regular file at the absolute path p
// as the image's merged tree has it: the topmost layer that holds p, or
// deletes it (a whiteout .wh.NAME, an opaque folder .wh..wh..opq above it,
// a whiteout of a folder above it), decides. Layers are read from the top
// down, each as a stream; nothing is written. A symlink or hard link at p
// is not followed (an error says so).
func (i *Image) ReadFile(p string) ([]byte, error) {
	p = path.Clean("/" + p)
	for n := len(i.Layers) - 1; n >= 0; n-- {
		b, found, err := readFromLayer(i.Layers[n], p)
		if err != nil {
			return nil, err
		}
		if found {
			if b == nil {
				return nil, fmt.Errorf("%s: %w (deleted by layer %s)", p, errNotInImage, i.Layers[n].DiffID)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", p, errNotInImage)
}

// readFromLayer looks for p in one layer: found with its content, found
// with nil (deleted here), or not found (the layers below decide).
func readFromLayer(l *Layer, p string) ([]byte, bool, error) {
	rc, err := l.Open()
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var content []byte
	found, deleted := false, false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("layer %s: read: %w", l.DiffID, err)
		}
		name := path.Clean("/" + h.Name)
		dir, base := path.Split(name)
		dir = path.Clean(dir)
		switch {
		case name == p:
			if h.Typeflag != tar.TypeReg { // archive/tar reads the old TypeRegA as TypeReg
				return nil, false, fmt.Errorf("layer %s: %s is not a regular file (type %q); hutch does not follow links to find it", l.DiffID, p, h.Typeflag)
			}
			b, err := io.ReadAll(io.LimitReader(tr, maxUserDB+1))
			if err != nil {
				return nil, false, fmt.Errorf("layer %s: read %s: %w", l.DiffID, p, err)
			}
			if len(b) > maxUserDB {
				return nil, false, fmt.Errorf("layer %s: %s is above %d bytes", l.DiffID, p, maxUserDB)
			}
			content, found = b, true
		case base == ".wh..wh..opq" && under(p, dir):
			deleted = true
		case strings.HasPrefix(base, ".wh.") && (path.Join(dir, strings.TrimPrefix(base, ".wh.")) == p || under(p, path.Join(dir, strings.TrimPrefix(base, ".wh.")))):
			deleted = true
		}
	}
	if found {
		return content, true, nil
	}
	return nil, deleted, nil
}

// under reports whether p is strictly below the folder dir.
func under(p, dir string) bool {
	return dir == "/" || strings.HasPrefix(p, dir+"/")
}

// User is a user of the image resolved to numbers.
type User struct {
	UID, GID       uint32
	AdditionalGids []uint32
}

// LookupUser resolves the config's user (uid, uid:gid, name, name:group,
// uid:group, name:gid) as docker does: a name is looked up in the image's
// /etc/passwd, a group name in its /etc/group; without a group the
// user's passwd entry gives it (0 when a numeric uid has no entry); the
// groups of /etc/group that list the user's name are its supplementary
// groups. What is not supported is said: a name without /etc/passwd in
// the image, a name it lacks, and lookups through NSS (LDAP, sssd), which
// need the image's programs to run.
func (i *Image) LookupUser(spec string) (User, error) {
	fail := func(err error) (User, error) { return User{}, fmt.Errorf("image %s: user %q: %w", i.Ref, spec, err) }
	var passwd, group []byte
	us, gs, hasGroup := strings.Cut(spec, ":")
	if us == "" || (hasGroup && gs == "") {
		return fail(errors.New("expected uid, name, uid:gid or name:group"))
	}
	if !hasGroup || !numeric(us) || !numeric(gs) {
		// uid:gid needs no lookup; anything else reads the image's files
		// (a file the image lacks is empty; resolveUser says when a name
		// needed it).
		var err error
		if passwd, err = i.ReadFile("/etc/passwd"); err != nil && !errors.Is(err, errNotInImage) {
			return fail(err)
		}
		if group, err = i.ReadFile("/etc/group"); err != nil && !errors.Is(err, errNotInImage) {
			return fail(err)
		}
	}
	u, err := resolveUser(spec, passwd, group)
	if err != nil {
		return fail(err)
	}
	return u, nil
}

// resolveUser is LookupUser on the contents of /etc/passwd and /etc/group
// (nil when the image has none).
func resolveUser(spec string, passwd, group []byte) (User, error) {
	us, gs, hasGroup := strings.Cut(spec, ":")
	var u User
	name := ""
	entryGID, hasEntry := uint32(0), false
	if n, err := strconv.ParseUint(us, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, f := range dbLines(passwd, 7) {
			if id, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(id) == u.UID {
				name, hasEntry = f[0], true
				if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					entryGID = uint32(g)
				}
				break
			}
		}
	} else {
		if passwd == nil {
			return u, fmt.Errorf("the image has no /etc/passwd to look the name %q up in (expected a numeric uid)", us)
		}
		for _, f := range dbLines(passwd, 7) {
			if f[0] != us {
				continue
			}
			id, err1 := strconv.ParseUint(f[2], 10, 32)
			g, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 != nil || err2 != nil {
				return u, fmt.Errorf("the /etc/passwd entry of %q has no numeric uid and gid", us)
			}
			u.UID, entryGID, name, hasEntry = uint32(id), uint32(g), us, true
			break
		}
		if !hasEntry {
			return u, fmt.Errorf("no user %q in the image's /etc/passwd (names served by NSS, such as LDAP, are not supported)", us)
		}
	}
	u.GID = entryGID
	if hasGroup {
		if n, err := strconv.ParseUint(gs, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			if group == nil {
				return u, fmt.Errorf("the image has no /etc/group to look the group %q up in (expected a numeric gid)", gs)
			}
			found := false
			for _, f := range dbLines(group, 4) {
				if f[0] == gs {
					g, err := strconv.ParseUint(f[2], 10, 32)
					if err != nil {
						return u, fmt.Errorf("the /etc/group entry of %q has no numeric gid", gs)
					}
					u.GID, found = uint32(g), true
					break
				}
			}
			if !found {
				return u, fmt.Errorf("no group %q in the image's /etc/group", gs)
			}
		}
	}
	if name != "" && hasEntry {
		seen := map[uint32]bool{u.GID: true}
		for _, f := range dbLines(group, 4) {
			g, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil || seen[uint32(g)] {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					seen[uint32(g)] = true
					u.AdditionalGids = append(u.AdditionalGids, uint32(g))
					break
				}
			}
		}
	}
	return u, nil
}

func numeric(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// dbLines splits a passwd or group file into its lines' fields (at least
// min of them), skipping comments and short lines.
func dbLines(b []byte, min int) [][]string {
	var out [][]string
	s := bufio.NewScanner(bytes.NewReader(b))
	s.Buffer(make([]byte, 64<<10), maxUserDB)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < min {
			continue
		}
		out = append(out, f)
	}
	return out
}
