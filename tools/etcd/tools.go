//go:build tools

// Package tools pins the etcd server so `go build go.etcd.io/etcd/server/v3` (whose module
// root is etcd's main package) builds exactly the version in go.mod.
package tools

import _ "go.etcd.io/etcd/server/v3"
