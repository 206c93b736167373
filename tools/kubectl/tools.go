//go:build tools

// Package tools pins kubectl so `go build k8s.io/kubernetes/cmd/kubectl` builds exactly the version in go.mod.
package tools

import _ "k8s.io/kubernetes/cmd/kubectl"
