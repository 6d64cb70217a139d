package certchild

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nri-csig/nri-csig/pkg/verify"
)

var fullBuild struct {
	once sync.Once
	path string
	err  error
}

// fullBinary builds nri-csig (no tag: the binary nri-csigd runs as its
// child) once per run.
func fullBinary(tb testing.TB) string {
	tb.Helper()
	fullBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "certchild-")
		if err != nil {
			fullBuild.err = err
			return
		}
		fullBuild.path = filepath.Join(dir, "nri-csig")
		cmd := exec.Command("go", "build", "-o", fullBuild.path, "../../cmd/nri-csig")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fullBuild.err = errors.New("go build ./cmd/nri-csig: " + err.Error() + "\n" + string(b))
		}
	})
	if fullBuild.err != nil {
		tb.Fatal(fullBuild.err)
	}
	return fullBuild.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fullBuild.path != "" {
		os.RemoveAll(filepath.Dir(fullBuild.path))
	}
	os.Exit(code)
}

func (c *Client) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return 0
	}
	return c.conn.pid
}

// The real child, nri-csig cert-verifier: it verifies and refuses as in
// process; killed, it is started again on the next request; idle, its
// stdin is closed and it exits.
func TestRealChild(t *testing.T) {
	path := fullBinary(t)
	k, sig, notAfter := notarySigned(t)
	var stderr strings.Builder
	c := NewClient(func() (string, error) { return path, nil }, WithBackoff(0), WithStderr(&stderr))
	v := verifier(t, c, k)
	if err := v.Verify(imageDigest.String(), sig); err != nil {
		t.Fatalf("Verify = %v; child stderr %q", err, stderr.String())
	}
	if err := v.Verify(otherDigest.String(), sig); !errors.Is(err, verify.ErrDigestMismatch) {
		t.Fatalf("Verify(other digest) = %v; want ErrDigestMismatch", err)
	}
	if got := v.(verify.CertExpiry).ValidUntil(sig); !got.Equal(notAfter) {
		t.Fatalf("ValidUntil = %v; want %v", got, notAfter)
	}
	pid := c.pid()
	if pid == 0 {
		t.Fatal("no child running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.pid() == 0 })
	if err := v.Verify(imageDigest.String(), sig); err != nil || c.Starts() != 2 {
		t.Fatalf("Verify after the child was killed = %v with %d starts; want nil with 2", err, c.Starts())
	}

	// Idle: the client closes stdin and the child exits (it is reaped, so
	// its PID is gone).
	pid = c.pid()
	c.mu.Lock()
	c.idle = 0
	cn := c.conn
	c.mu.Unlock()
	c.idleCheck(cn)
	<-cn.done
	waitFor(t, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
}

// One x509 (notation) verification in process and through the child, for
// the extra latency the child costs (go test -bench Notation ./pkg/certchild/).
func BenchmarkNotationVerify(b *testing.B) {
	k, sig, _ := notarySigned(b)
	in, err := inProcess(k)
	if err != nil {
		b.Fatal(err)
	}
	path := fullBinary(b)
	c := NewClient(func() (string, error) { return path, nil })
	child, err := c.Verifier(k)
	if err != nil {
		b.Fatal(err)
	}
	for name, v := range map[string]verify.CertVerifier{"in-process": in, "child": child} {
		b.Run(name, func(b *testing.B) {
			if err := v.Verify(imageDigest.String(), sig); err != nil { // the child started, its verifier built
				b.Fatal(err)
			}
			for b.Loop() {
				if err := v.Verify(imageDigest.String(), sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
