// Package scan lets one command share a scan of the host between the many
// questions it asks of it: a delete of N containers asks the finders, for
// each name, what is marked for it, and each answer would otherwise read
// every named namespace and dump every link again (N scans of N objects).
// The cache lives in a context, for the length of one read-only phase; it
// touches nothing on the host itself.
package scan

import (
	"context"
	"sync"
)

type key struct{}

type cache struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	once sync.Once
	v    any
	err  error
}

// With returns a context whose scans are made once and shared.
func With(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, &cache{m: map[string]*entry{}})
}

// Active says whether ctx shares its scans (comes from With).
func Active(ctx context.Context) bool {
	_, ok := ctx.Value(key{}).(*cache)
	return ok
}

// Memo returns what f returns, made once per name within a context from
// With; without one it calls f every time.
func Memo[T any](ctx context.Context, name string, f func() (T, error)) (T, error) {
	c, ok := ctx.Value(key{}).(*cache)
	if !ok {
		return f()
	}
	c.mu.Lock()
	e := c.m[name]
	if e == nil {
		e = &entry{}
		c.m[name] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.v, e.err = f() })
	v, _ := e.v.(T)
	return v, e.err
}
