package certchild

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nri-csig/nri-csig/internal/notationtest"
	"github.com/nri-csig/nri-csig/internal/x509test"
	"github.com/nri-csig/nri-csig/pkg/notaryverify"
	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/signature"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

var (
	imageDigest = digest.FromString("the image manifest")
	otherDigest = digest.FromString("another image")
	buildSystem = pkix.Name{CommonName: "build", Organization: []string{"example"}}
)

// notarySigned is an x509 witness's key and a Notary Project signature of
// imageDigest by it, made with notation-go's signer as the notation CLI.
func notarySigned(t x509test.TB) (*policy.Key, verify.CertSignature, time.Time) {
	t.Helper()
	ca := x509test.NewCA(t, "build CA")
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second)
	leaf := ca.Leaf(t, buildSystem, time.Now().Add(-time.Minute), notAfter)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: imageDigest, Size: 512}
	env := notationtest.Sign(t, leaf, desc, signature.JWSMediaType)
	k := &policy.Key{Witness: "build", Kind: policy.WitnessX509, Fingerprint: "x509:test",
		X509: &policy.X509Trust{CACertificates: ca.Chain(), TrustedIdentities: []string{"*"}}}
	return k, verify.CertSignature{Format: verify.FormatNotation, MediaType: signature.JWSMediaType, Blob: env}, notAfter
}

// inProcess is the full binary's verifier of x509 witnesses (what
// witnessverify.InProcess returns for them).
func inProcess(k *policy.Key) (verify.CertVerifier, error) { return notaryverify.New(k.X509) }

// fakeChild is a child served in this process over real pipes.
type fakeChild struct {
	starts atomic.Int32
	kills  atomic.Int32
}

// serve makes c start fake children: Serve over os.Pipe pairs, or, when
// body is set, body in its place (a child that misbehaves).
func (f *fakeChild) serve(c *Client, build Build, body func(in, out *os.File)) {
	c.spawn = func() (*conn, error) {
		f.starts.Add(1)
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		ended := make(chan error, 1)
		go func() {
			var err error
			if body != nil {
				body(inR, outW)
			} else {
				err = Serve(inR, outW, build, time.Minute)
			}
			outW.Close()
			ended <- err
		}()
		var once sync.Once
		kill := func() {
			once.Do(func() {
				f.kills.Add(1)
				inR.Close()
				outW.Close()
			})
		}
		return newConn(0, kill, func() error { return <-ended }, inW, outR), nil
	}
}

func newFake(t *testing.T, build Build, body func(in, out *os.File), opts ...Option) (*Client, *fakeChild) {
	t.Helper()
	c := NewClient(func() (string, error) { return "", errors.New("not used") }, append([]Option{WithBackoff(0)}, opts...)...)
	f := &fakeChild{}
	f.serve(c, build, body)
	return c, f
}

func verifier(t *testing.T, c *Client, k *policy.Key) verify.CertVerifier {
	t.Helper()
	v, err := c.Verifier(k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A real notation signature verifies through the child (the full build's
// verifier over pipes), a copy over another digest is refused with the
// class pkg/verify's callers test for, and the end of validity comes with
// the verdict: ValidUntil asks the child nothing.
func TestNotationThroughChild(t *testing.T) {
	k, sig, notAfter := notarySigned(t)
	var asked atomic.Int32
	build := func(k *policy.Key) (verify.CertVerifier, error) {
		asked.Add(1)
		return inProcess(k)
	}
	c, f := newFake(t, build, nil)
	v := verifier(t, c, k)
	if f.starts.Load() != 0 {
		t.Fatalf("a child started before the first verification")
	}
	if err := v.Verify(imageDigest.String(), sig); err != nil {
		t.Fatalf("Verify = %v; want nil", err)
	}
	err := v.Verify(otherDigest.String(), sig)
	if !errors.Is(err, verify.ErrDigestMismatch) || errors.Is(err, verify.ErrVerifierUnavailable) {
		t.Fatalf("Verify(other digest) = %v; want a refusal wrapping ErrDigestMismatch", err)
	}
	x, ok := v.(verify.CertExpiry)
	if !ok {
		t.Fatalf("an x509 witness's verifier is not a CertExpiry")
	}
	n := asked.Load()
	if got := x.ValidUntil(sig); !got.Equal(notAfter) {
		t.Fatalf("ValidUntil = %v; want the leaf's end %v", got, notAfter)
	}
	// A verifier of the same trust (a bundle reload) knows it too.
	if got := verifier(t, c, k).(verify.CertExpiry).ValidUntil(sig); !got.Equal(notAfter) {
		t.Fatalf("ValidUntil (new verifier) = %v; want %v", got, notAfter)
	}
	if f.starts.Load() != 1 || asked.Load() != n {
		t.Fatalf("starts %d, builds %d then %d: want one child, its verifier built once and not asked for ValidUntil", f.starts.Load(), n, asked.Load())
	}
}

// A sigstore witness's verifier is no CertExpiry (its verdicts do not end
// with time), as in process.
func TestSigstoreVerifierHasNoExpiry(t *testing.T) {
	c, _ := newFake(t, nil, nil)
	v := verifier(t, c, &policy.Key{Kind: policy.WitnessSigstore, Sigstore: &policy.SigstoreTrust{TrustedRoot: "{}"}})
	if _, ok := v.(verify.CertExpiry); ok {
		t.Fatal("sigstore verifier is a CertExpiry")
	}
}

// Several verifications are in flight at once over the one child.
func TestConcurrentRequests(t *testing.T) {
	k, sig, _ := notarySigned(t)
	c, f := newFake(t, inProcess, nil)
	v := verifier(t, c, k)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			d := imageDigest.String()
			if i%2 == 1 {
				d = otherDigest.String()
			}
			err := v.Verify(d, sig)
			if (i%2 == 0) != (err == nil) {
				errs <- fmt.Errorf("request %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.starts.Load() != 1 {
		t.Errorf("%d children started; want 1", f.starts.Load())
	}
}

// blocking is a verifier that never answers until released.
type blocking struct{ release chan struct{} }

func (b blocking) Verify(string, verify.CertSignature) error { <-b.release; return nil }

// A child that hangs: the request fails at its deadline as unavailable, the
// child is killed, and the next request starts another.
func TestHungChildIsKilledAndRestarted(t *testing.T) {
	k, sig, _ := notarySigned(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var calls atomic.Int32
	build := func(k *policy.Key) (verify.CertVerifier, error) {
		if calls.Add(1) == 1 {
			return blocking{release}, nil
		}
		return inProcess(k)
	}
	c, f := newFake(t, build, nil, WithTimeout(50*time.Millisecond))
	v := verifier(t, c, k)
	err := v.Verify(imageDigest.String(), sig)
	if !errors.Is(err, verify.ErrVerifierUnavailable) || !strings.Contains(err.Error(), "no reply within 50ms") {
		t.Fatalf("Verify (hung child) = %v; want unavailable, no reply within the deadline", err)
	}
	if f.kills.Load() != 1 {
		t.Fatalf("the hung child was killed %d times; want 1", f.kills.Load())
	}
	if err := v.Verify(imageDigest.String(), sig); err != nil {
		t.Fatalf("Verify after restart = %v; want nil", err)
	}
	if f.starts.Load() != 2 {
		t.Fatalf("%d starts; want 2", f.starts.Load())
	}
}

// A child that dies with requests in flight: they fail at once (the
// deadline here is an hour), and the next request starts another child.
func TestDeadChildFailsInFlightAtOnce(t *testing.T) {
	k, sig, _ := notarySigned(t)
	first := true
	var mu sync.Mutex
	body := func(in, out *os.File) {
		mu.Lock()
		die := first
		first = false
		mu.Unlock()
		if die {
			readFrame(in, maxRequest) // a request arrives, then the child is gone
			return
		}
		Serve(in, out, inProcess, time.Minute)
	}
	c, f := newFake(t, nil, body, WithTimeout(time.Hour))
	v := verifier(t, c, k)
	err := v.Verify(imageDigest.String(), sig)
	if !errors.Is(err, verify.ErrVerifierUnavailable) || !strings.Contains(err.Error(), "the process exited") {
		t.Fatalf("Verify (dead child) = %v; want unavailable, the process exited", err)
	}
	if err := v.Verify(imageDigest.String(), sig); err != nil || f.starts.Load() != 2 {
		t.Fatalf("Verify after restart = %v with %d starts; want nil with 2", err, f.starts.Load())
	}
}

// Garbage and oversized replies: an error, and the child is killed.
func TestBadRepliesKillTheChild(t *testing.T) {
	k, sig, _ := notarySigned(t)
	for name, reply := range map[string][]byte{
		"not JSON":     {0, 0, 0, 3, 'x', 'y', 'z'},
		"oversized":    {0xff, 0xff, 0xff, 0xff},
		"unknown ID":   append([]byte{0, 0, 0, 9}, `{"id":99}`...),
		"half a frame": {0, 0, 1, 0, '{'},
	} {
		t.Run(name, func(t *testing.T) {
			body := func(in, out *os.File) {
				readFrame(in, maxRequest)
				out.Write(reply)
				if name == "half a frame" {
					out.Close()
				}
				readFrame(in, maxRequest) // stays until killed
			}
			c, f := newFake(t, nil, body, WithTimeout(time.Hour))
			err := verifier(t, c, k).Verify(imageDigest.String(), sig)
			if !errors.Is(err, verify.ErrVerifierUnavailable) || !strings.Contains(err.Error(), "bad reply") {
				t.Fatalf("Verify = %v; want unavailable, bad reply", err)
			}
			if f.kills.Load() != 1 {
				t.Fatalf("child killed %d times; want 1", f.kills.Load())
			}
		})
	}
}

// No binary: a clear error that says where it looked and what to install,
// and through pkg/verify the witness's signature counts for nothing.
func TestMissingBinaryFailsClosed(t *testing.T) {
	k, sig, _ := notarySigned(t)
	for name, find := range map[string]func() (string, error){
		"not found": func() (string, error) {
			return "", errors.New("no executable nri-csig next to /usr/bin/nri-csigd or on PATH")
		},
		"not runnable": func() (string, error) { return t.TempDir() + "/nri-csig", nil },
	} {
		var logged strings.Builder
		c := NewClient(find, WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
		v := verifier(t, c, k)
		err := v.Verify(imageDigest.String(), sig)
		if !strings.Contains(logged.String(), "certificate verifier: cannot start the process") || !strings.Contains(logged.String(), "install nri-csig") {
			t.Errorf("%s: logged %q; want the start failure with its remedy", name, logged.String())
		}
		if !errors.Is(err, verify.ErrVerifierUnavailable) || !strings.Contains(err.Error(), "install nri-csig") ||
			!strings.Contains(err.Error(), "/usr/bin/nri-csig") {
			t.Errorf("%s: Verify = %v; want unavailable, saying what to install", name, err)
		}
		if name == "not found" && !strings.Contains(err.Error(), "next to /usr/bin/nri-csigd or on PATH") {
			t.Errorf("%s: %v does not say where it looked", name, err)
		}
		// A second request within the backoff gives the same answer at once.
		if err2 := v.Verify(imageDigest.String(), sig); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%s: second Verify = %v; want %v", name, err2, err)
		}
		if c.Starts() != 0 {
			t.Errorf("%s: %d starts", name, c.Starts())
		}
	}
}

// An idle child is stopped (its stdin closed: it exits) and the next
// request starts another.
func TestIdleChildStops(t *testing.T) {
	k, sig, _ := notarySigned(t)
	c, f := newFake(t, inProcess, nil, WithIdle(time.Millisecond))
	v := verifier(t, c, k)
	if err := v.Verify(imageDigest.String(), sig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.conn == nil })
	if err := v.Verify(imageDigest.String(), sig); err != nil || f.starts.Load() != 2 {
		t.Fatalf("Verify after idle = %v with %d starts; want nil with 2", err, f.starts.Load())
	}
}

// waitFor polls cond until it holds (a condition, not a duration, is what
// the test asserts; the 30 s bound only ends a broken run).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not reached")
		}
	}
}
