//go:build tools

// The mains this wrapper builds; the build tag keeps the file out of every build, while
// `go mod tidy` still records what they need.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
