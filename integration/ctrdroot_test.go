//go:build integration

package integration

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/internal/testbed"
)

// lateSocket puts at path a unix socket that refuses every connection for
// the first late (a socket file nobody listens on, as a containerd that
// crashed leaves behind) and then forwards each one to target. The returned
// channel yields once forwarding started (nil) or could not (the error).
func lateSocket(t *testing.T, path, target string, late time.Duration) <-chan error {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // connecting now fails with ECONNREFUSED

	var mu sync.Mutex
	var lis net.Listener
	var conns []net.Conn
	done := false
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if done {
			c.Close()
			return false
		}
		conns = append(conns, c)
		return true
	}
	serving := make(chan error, 1)
	timer := time.AfterFunc(late, func() {
		os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			serving <- err
			return
		}
		mu.Lock()
		lis = l
		mu.Unlock()
		serving <- nil
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("unix", target)
				if err != nil || !track(u) {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
			}()
		}
	})
	t.Cleanup(func() {
		timer.Stop()
		mu.Lock()
		defer mu.Unlock()
		done = true
		if lis != nil {
			lis.Close()
		}
		for _, c := range conns {
			c.Close()
		}
	})
	return serving
}

// In the pre-installed mode containerd launches the daemon before its gRPC
// socket serves. The daemon must still learn containerd's root (here not the
// default /var/lib/containerd but <dir>/root): without it the CRI's own
// sandbox files it mounts into every container (/etc/hosts, /etc/hostname,
// /etc/resolv.conf under <root>/io.containerd.grpc.v1.cri/sandboxes/<pod>)
// are not known as the CRI's, they lie in a protected folder (<dir>, the node
// config's), and every container is refused. The daemon is pointed at a
// socket that refuses connections for its first 3 s and then leads to
// containerd; the container is created as soon as the daemon has its image
// index, without waiting for anything about the root.
func TestContainerdRootLearnedLate(t *testing.T) {
	n := startGuardContainerd(t)
	// Not named containerd.sock: the daemon takes the folder of a socket so
	// named for containerd's state (<state>/containerd.sock), and the
	// proxy's folder is not. The node config names the state instead; the
	// root is what the daemon has to learn.
	proxy := filepath.Join(n.c.Dir, "late", "ctrd-late.sock")
	n.writeConfig(t, fmt.Sprintf("guard:\n  containerdState: %s\n", filepath.Join(n.c.Dir, "state")))
	serving := lateSocket(t, proxy, n.c.Socket, 3*time.Second)
	d, err := n.c.StartDaemon(n.config, "--containerd-address", proxy)
	if err != nil {
		t.Fatal(err)
	}
	n.d = d
	t.Cleanup(func() { d.Stop() })
	select {
	case err := <-serving:
		if err != nil {
			t.Fatalf("the late socket: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late socket never served")
	}
	// Decisions need the image index, which is not what this test is about.
	waitLog(t, d.LogPath, "imagestore: image index built", 20*time.Second)

	pod := n.pod(t, "lateroot", enforcedNS, podOptions{})
	if _, err := pod.create(t, "trusted", env.Trusted.Ref, ctrOptions{}); err != nil {
		t.Fatalf("the allow-listed image was refused with containerd's root at %s: %v\ndaemon log:\n%s",
			filepath.Join(n.c.Dir, "root"), err, testbed.LastLines(d.Log(), 15))
	}
	_, err = pod.create(t, "unsigned", env.Untrusted.Ref, ctrOptions{})
	refusedBy(t, "unsigned", err, "not on the allow list")
	root := fmt.Sprintf(`"root":%q`, filepath.Join(n.c.Dir, "root"))
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, `"msg":"containerd root learned"`) {
			if !strings.Contains(line, root) {
				t.Errorf("the daemon learned another root than %s: %s", root, line)
			}
			return
		}
	}
	t.Errorf("the daemon never logged \"containerd root learned\"; log:\n%s", d.Log())
}
