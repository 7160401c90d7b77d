//go:build tools

// The main this wrapper builds; the build tag keeps the file out of every build.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
