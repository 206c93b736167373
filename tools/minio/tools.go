//go:build tools

// Package tools pins the MinIO server so `go build github.com/minio/minio` builds exactly
// the version in go.mod (the last commit of the archived community repository).
package tools

import _ "github.com/minio/minio"
