// Package spec holds hutch's manifest types (the YAML shape users write,
// apiVersion hutch/v1alpha1), their strict loading through yaml.Node so every
// value keeps its file:line:col, defaults, and validation that reports every
// problem at once. Pure code: it never touches the host beyond reading the
// manifest files it is given.
package spec
