// Package version holds the build's version, set by the Makefile through -ldflags.
package version

import "runtime/debug"

// Version is overridden at link time: -X github.com/nri-csig/nri-csig/internal/version.Version=v1.2.3
var Version = ""

// String returns the version, falling back to the module version embedded by "go install".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
