package guard

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// HostResolver follows symlinks in p in this process's view of the host's
// file tree, as the runtime will when it mounts p: a hostPath
// /tmp/x -> /run/nri (made by a pod that may write to /tmp) reaches NRI. The
// longest existing prefix is resolved and the rest appended (the CRI creates
// a missing hostPath directory, below the resolved prefix). It needs the
// daemon to see the host's tree: the systemd unit has no PrivateTmp and
// ProtectHome=read-only for that reason.
//
// A symlink swapped in between this check and the mount (a race only a pod
// that can already write to a host directory can run) is not caught; see
// docs/THREAT-MODEL.md.
func HostResolver(p string) (string, error) {
	rest := ""
	cur := filepath.Clean(p)
	for {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
