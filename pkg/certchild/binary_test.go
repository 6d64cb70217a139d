package certchild

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nri-csig/nri-csig/internal/x509test"
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

// parentEnv makes the test binary a stand-in daemon (asParent).
const parentEnv = "CERTCHILD_TEST_PARENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(parentEnv); path != "" {
		asParent(path)
		return
	}
	code := m.Run()
	if fullBuild.path != "" {
		os.RemoveAll(filepath.Dir(fullBuild.path))
	}
	os.Exit(code)
}

// asParent verifies once through the child at path, prints the child's
// PID and waits to be killed.
func asParent(path string) {
	k, sig, _ := notarySigned(x509test.Must)
	c := NewClient(func() (string, error) { return path, nil })
	v, err := c.Verifier(k)
	if err == nil {
		err = v.Verify(imageDigest.String(), sig)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(c.pid())
	select {}
}

// gone reports whether pid has exited (a zombie not yet reaped by its new
// parent counts as gone).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(after, "Z")
}

// A daemon killed with SIGKILL leaves no child behind (Pdeathsig, and its
// stdin's EOF).
func TestKilledParentLeavesNoChild(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), parentEnv+"="+fullBinary(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the stand-in daemon said %q: %v", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || gone(pid) {
		t.Fatalf("the stand-in daemon said %q; want its running child's PID", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, func() bool { return gone(pid) })
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
