// Package schema holds the JSON Schema (draft 2020-12) of hutch's manifest,
// for editors: yaml-language-server reads it from the modeline
// `# yaml-language-server: $schema=...` that starts every example manifest.
// hutch.schema.json is generated from spec's Go types (Generate, run by
// `go test ./schema -update`), and a test checks that it matches them and
// agrees with spec.Validate on every example. Pure code: it never touches
// the host.
package schema

import _ "embed"

// JSON is the schema, hutch.schema.json.
//
//go:embed hutch.schema.json
var JSON []byte
