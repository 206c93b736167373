//go:build tools

// Package tools pins k6 so `go build go.k6.io/k6` builds exactly the version in go.mod.
package tools

import _ "go.k6.io/k6"
