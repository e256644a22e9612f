package main

import (
	"fmt"
	"os"
	"strings"

	"hutch/plan"
	"hutch/reconcile"
)

// faultEnv names the environment variable of fault injection, used by the
// crash-safety tests: HUTCH_FAULT=before:veth.create (or after:veth.create)
// makes hutch exit with status 137, as if killed by SIGKILL, just before (or
// just after) the first step that creates a veth. Actions are create, update
// and delete; a replace is a delete, then a create. Nothing is cleaned up:
// no deferred function runs, no lock is released but by the kernel.
const faultEnv = "HUTCH_FAULT"

// faultFromEnv returns the reconcile.Fault that HUTCH_FAULT asks for, or nil.
func faultFromEnv() (reconcile.Fault, error) {
	return parseFault(os.Getenv(faultEnv), func() {
		os.Exit(137)
	})
}

// parseFault reads a HUTCH_FAULT value; the Fault it returns prints why
// and calls exit at that point ("" asks for none).
func parseFault(v string, exit func()) (reconcile.Fault, error) {
	if v == "" {
		return nil, nil
	}
	when, point, ok := strings.Cut(v, ":")
	kind, action, ok2 := strings.Cut(point, ".")
	if !ok || !ok2 || (when != "before" && when != "after") ||
		(action != "create" && action != "update" && action != "delete") {
		return nil, fmt.Errorf("%s=%q: want before:KIND.ACTION or after:KIND.ACTION (ACTION create, update or delete)", faultEnv, v)
	}
	return func(w string, k plan.Kind, a string) {
		if w == when && string(k) == kind && a == action {
			fmt.Fprintf(os.Stderr, "hutch: %s=%s: exiting as if killed\n", faultEnv, v)
			exit()
		}
	}, nil
}
