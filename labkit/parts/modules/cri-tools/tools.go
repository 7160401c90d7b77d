//go:build tools

// The main this wrapper builds; the build tag keeps the file out of every build, while
// `go mod tidy` still records what it needs.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
