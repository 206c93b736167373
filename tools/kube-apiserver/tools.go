//go:build tools

// Package tools pins kube-apiserver so `go build k8s.io/kubernetes/cmd/kube-apiserver` builds exactly the version in go.mod.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
