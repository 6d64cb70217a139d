//go:build !nodeonly && nodaemon

package cli

import (
	"fmt"
	"os"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/nri-csig/nri-csig/internal/fullbinary"
	"github.com/nri-csig/nri-csig/pkg/keys"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// nri-csig-cli leaves out the certificate witnesses' code (notation-go and
// sigstore-go: as much binary again as the rest, and a Go process's memory
// is mostly its binary's pages). A command that needs it runs the same
// command line with the full binary instead.

// reexecEnv marks the process nri-csig-cli executes, so that an "nri-csig"
// that is itself an nri-csig-cli build refuses instead of looping.
const reexecEnv = "NRI_CSIG_CLI_REEXEC"

// needCertWitnesses replaces this process with nri-csig running the same
// command line (its output and exit status are the command's), found next
// to this executable or else on PATH. It returns only on failure.
func needCertWitnesses(what string) error {
	path, err := fullBinary()
	if err == nil {
		argv := append([]string{path}, os.Args[1:]...)
		err = syscall.Exec(path, argv, append(os.Environ(), reexecEnv+"=1"))
	}
	return &exitError{code: 2, err: fmt.Errorf("%s needs the certificate witnesses' verifiers and notation signing, which nri-csig-cli leaves out to stay small, and nri-csig could not be run (%v): install nri-csig (packaged as /usr/bin/nri-csig) or run \"nri-csig\" with the same arguments", what, err)}
}

// fullBinary finds nri-csig (fullbinary.Find), refusing in a process
// nri-csig-cli itself started.
func fullBinary() (string, error) {
	if os.Getenv(reexecEnv) != "" {
		return "", fmt.Errorf("this process was itself started by nri-csig-cli as %s (%s is set): that file is an nri-csig-cli build", fullbinary.Name, reexecEnv)
	}
	return fullbinary.Find()
}

// The certificate witnesses' functions. verify, sign, witness create and
// witness set-trust call needCertWitnesses before them, so these only run
// it again for a caller that did not.

func (f *x509Flags) verifyKey() (verify.Key, *policy.X509Trust, error) {
	return verify.Key{}, nil, needCertWitnesses("a witness of kind x509")
}

func (f *sigstoreFlags) key() (verify.Key, error) {
	return verify.Key{}, needCertWitnesses("a keyless Sigstore identity")
}

func (f *notationSignFlags) sign(*cobra.Command, keys.Signer, name.Digest, string, ...remote.Option) error {
	return needCertWitnesses("sign --format notation")
}
