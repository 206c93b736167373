//go:build tools

// Package tools pins helm so `go build helm.sh/helm/v3/cmd/helm` builds exactly the version in go.mod.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
