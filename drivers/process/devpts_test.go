//go:build linux

package process

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// openptySrc allocates a pty the way posix_openpt(3), grantpt and
// unlockpt do, in a static program run inside the container: open
// /dev/ptmx, TIOCSPTLCK 0, TIOCGPTN for the number, open /dev/pts/N, and
// prints the name of the terminal (ttyname(3) reads /proc/self/fd).
const openptySrc = `package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

func ioctl(fd, req uintptr, arg unsafe.Pointer) syscall.Errno {
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	return e
}

func main() {
	m, err := syscall.Open("/dev/ptmx", syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		fmt.Println("open /dev/ptmx:", err)
		os.Exit(1)
	}
	var unlock int32
	if e := ioctl(uintptr(m), syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); e != 0 {
		fmt.Println("unlockpt:", e)
		os.Exit(1)
	}
	var n uint32
	if e := ioctl(uintptr(m), syscall.TIOCGPTN, unsafe.Pointer(&n)); e != 0 {
		fmt.Println("ptsname:", e)
		os.Exit(1)
	}
	s, err := syscall.Open("/dev/pts/"+strconv.Itoa(int(n)), syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		fmt.Println("open the slave:", err)
		os.Exit(1)
	}
	var tio syscall.Termios
	if e := ioctl(uintptr(s), syscall.TCGETS, unsafe.Pointer(&tio)); e != 0 {
		fmt.Println("isatty:", e)
		os.Exit(1)
	}
	name, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(s))
	fmt.Println(name)
}
`

// withOpenpty puts the openpty program at /bin/openpty in the rootfs.
func withOpenpty(t *testing.T) func(string) { return withProgram(t, "openpty", openptySrc) }

// A process in the container can allocate a pty: /dev/ptmx leads to the
// ptmx of the container's own devpts instance (newinstance, ptmxmode=0666),
// which is not mounted nodev, and the pty it gets is /dev/pts/0 of that
// instance, whatever ptys the host has.
func TestPtyInsideContainer(t *testing.T) {
	c := newContainer(t, []string{"sleep", "100000"}, containerOpts{rootfs: withOpenpty(t)})
	c.start()
	if out := c.mustExec("openpty"); out != "/dev/pts/0\n" {
		t.Errorf("openpty inside printed %q, want /dev/pts/0", out)
	}
	if out := c.mustExec("readlink", "/dev/ptmx"); out != "pts/ptmx\n" {
		t.Errorf("/dev/ptmx inside links to %q, want pts/ptmx", out)
	}
	// The kernel's view: the init's mount table has a devpts of its own at
	// /dev/pts, with ptmxmode=666, mounted without nodev but with nosuid
	// and noexec.
	mi, err := os.ReadFile("/proc/" + itoa(c.state().PID) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var devpts string
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == "/dev/pts" {
			devpts = line
		}
	}
	if devpts == "" {
		t.Fatalf("no mount at /dev/pts:\n%s", mi)
	}
	pre, post, _ := strings.Cut(devpts, " - ")
	opts := strings.Split(strings.Fields(pre)[5], ",")
	fsOpts := strings.Fields(post)
	if len(fsOpts) < 3 || fsOpts[0] != "devpts" || !strings.Contains(","+fsOpts[2]+",", ",ptmxmode=666,") || !strings.Contains(","+fsOpts[2]+",", ",mode=620,") {
		t.Errorf("/dev/pts is not a devpts with ptmxmode=666 and mode=620: %s", devpts)
	}
	for _, o := range []string{"nosuid", "noexec"} {
		if !strings.Contains(strings.Join(opts, " "), o) {
			t.Errorf("/dev/pts is mounted without %s: %s", o, devpts)
		}
	}
	for _, o := range opts {
		if o == "nodev" {
			t.Errorf("/dev/pts is mounted nodev: %s", devpts)
		}
	}
	// Every other file system the container got stays nodev.
	for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[4] == "/dev/pts" {
			continue
		}
		// A bound device node is the exception: the standard ones, and
		// /dev/null bound over each masked file.
		if isDefaultDevice(f[4]) || slices.Contains(c.spec.Linux.MaskedPaths, f[4]) {
			continue
		}
		if !strings.Contains(","+f[5]+",", ",nodev,") {
			t.Errorf("%s is mounted without nodev: %s", f[4], line)
		}
	}
}

func isDefaultDevice(p string) bool {
	for _, d := range defaultDevices {
		if d.Path == p {
			return true
		}
	}
	return false
}
