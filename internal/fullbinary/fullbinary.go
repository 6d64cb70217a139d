// Package fullbinary finds nri-csig, the build with every command, for the
// smaller builds that leave some out and run it for those: nri-csig-cli
// (certificate witnesses' commands) and nri-csigd (the certificate
// witnesses' verifier process).
package fullbinary

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// Name is the full binary's file name (packaged as /usr/bin/nri-csig).
const Name = "nri-csig"

// Find returns nri-csig's path: next to the running executable, else on
// PATH, never the running executable itself. The error says where it
// looked.
func Find() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	selfInfo, err := os.Stat(self)
	if err != nil {
		return "", err
	}
	candidates := []string{filepath.Join(filepath.Dir(self), Name)}
	if p, err := exec.LookPath(Name); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		st, err := os.Stat(c)
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 || os.SameFile(st, selfInfo) {
			continue
		}
		return c, nil
	}
	return "", errors.New("no executable " + Name + " next to " + self + " or on PATH")
}
