package reconcile

import "hutch/plan"

// Fault is called before and after every step with "before" or "after", the
// resource kind and the action (create, update or delete; a replace is a
// delete, then a create); it may end the process, as the crash-safety tests
// have it do. The library only calls it: hutch's CLI makes one from
// HUTCH_FAULT (cmd/apply/fault.go), the tests here their own.
type Fault func(when string, kind plan.Kind, action string)
