// Command toolcache-ensure builds pinned Go tools into the tool cache (see
// package toolcache) for the Makefile: toolcache-ensure pkg@version ...
// It prints nothing when the cache already holds that version.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nri-csig/nri-csig/internal/toolcache"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: toolcache-ensure import/path/cmd/tool@version ...")
		os.Exit(2)
	}
	for _, arg := range os.Args[1:] {
		pkg, version, ok := strings.Cut(arg, "@")
		if !ok || pkg == "" || version == "" {
			fmt.Fprintf(os.Stderr, "toolcache-ensure: %q: want import/path@version\n", arg)
			os.Exit(2)
		}
		if _, err := toolcache.Ensure(toolcache.Tool{Packages: []string{pkg}, Version: version}); err != nil {
			fmt.Fprintf(os.Stderr, "toolcache-ensure: %v\n", err)
			os.Exit(1)
		}
	}
}
