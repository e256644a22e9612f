// Package tutorial holds the root tests that keep docs/tutorial.md and hutch's
// teaching commands true: the runner that executes every ```sh block of the
// tutorial in order, and tests of `hutch stats`, `hutch inspect` and the
// script `hutch plan --explain -o script` writes, each against the real
// kernel. The package has no code of its own; its tests build the hutch
// binary and touch the host only through it, the commands the tutorial
// shows, and /proc and cgroup files they read to check the answers.
package tutorial
