//go:build tools

// The module this wrapper pins; the build tag keeps the file out of every build.
package tools

import _ "sigs.k8s.io/kind"
