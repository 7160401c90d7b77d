//go:build tools

// The mains this wrapper builds; the build tag keeps the file out of every build, while
// `go mod tidy` still records what they need. check-status and mountns are the small
// helpers the kube-controllers and node images ship next to the main binaries.
package tools

import (
	_ "github.com/projectcalico/calico/calicoctl/calicoctl"
	_ "github.com/projectcalico/calico/cni-plugin/cmd/calico"
	_ "github.com/projectcalico/calico/kube-controllers/cmd/check-status"
	_ "github.com/projectcalico/calico/kube-controllers/cmd/kube-controllers"
	_ "github.com/projectcalico/calico/node/cmd/calico-node"
	_ "github.com/projectcalico/calico/node/cmd/mountns"
)
