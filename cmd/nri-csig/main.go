// Command nri-csig enforces container image signatures on a containerd node.
// It is thin: every subcommand lives in ./cli and the logic in ../../pkg.
package main

import (
	"fmt"
	"os"

	"github.com/nri-csig/nri-csig/cmd/nri-csig/cli"
)

func main() {
	root := cli.New()
	root.SetArgs(cli.Args(os.Args[1:]))
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "nri-csig: %v\n", err)
		os.Exit(cli.ExitCode(err))
	}
}
