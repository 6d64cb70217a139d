package certchild

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/nri-csig/nri-csig/pkg/policy"
	"github.com/nri-csig/nri-csig/pkg/verify"
)

// Defaults of the client's options.
const (
	// DefaultTimeout bounds one request, from its start to its reply.
	DefaultTimeout = 10 * time.Second
	// DefaultIdle is how long the child lives without a request.
	DefaultIdle = 2 * time.Minute
	// DefaultBackoff is the least time between two starts of the child.
	DefaultBackoff = time.Second
)

// Command is the hidden command of the full nri-csig that runs Serve.
const Command = "cert-verifier"

// maxUntil bounds the ValidUntil answers the client keeps (one per x509
// signature verified; 16k is more than a node's images have).
const maxUntil = 16 << 10

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each request (default DefaultTimeout): past it the
// request fails and the child is killed.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithIdle sets how long the child lives without a request (default
// DefaultIdle).
func WithIdle(d time.Duration) Option { return func(c *Client) { c.idle = d } }

// WithBackoff sets the least time between two starts of the child (default
// DefaultBackoff), so that a child that crashes at once does not spin.
func WithBackoff(d time.Duration) Option { return func(c *Client) { c.backoff = d } }

// WithLogger sets where the child's failures are logged (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithStderr sets where the child's stderr goes (default os.Stderr, the
// daemon's journal).
func WithStderr(w io.Writer) Option { return func(c *Client) { c.stderr = w } }

// Client asks one long-lived child process for certificate verifications.
// It is safe for concurrent use; the zero value is not usable (NewClient).
type Client struct {
	find                   func() (string, error)
	timeout, idle, backoff time.Duration
	log                    *slog.Logger
	stderr                 io.Writer
	// spawn starts a child: exec by default, in-process servers in tests.
	spawn func() (*conn, error)

	mu        sync.Mutex
	conn      *conn // the running child; nil: none
	nextID    uint64
	lastStart time.Time
	startErr  error // why the last start failed (nil: it did not)
	starts    int
	until     map[[sha256.Size]byte]int64
}

// NewClient returns a client that runs find()'s binary with Command. No
// child starts until the first request.
func NewClient(find func() (string, error), opts ...Option) *Client {
	c := &Client{find: find, timeout: DefaultTimeout, idle: DefaultIdle, backoff: DefaultBackoff,
		log: slog.New(slog.DiscardHandler), stderr: os.Stderr, until: map[[sha256.Size]byte]int64{}}
	c.spawn = c.spawnExec
	for _, o := range opts {
		o(c)
	}
	return c
}

// SetLogger sets where the child's failures are logged.
func (c *Client) SetLogger(l *slog.Logger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = l
}

// Starts reports how many times a child was started.
func (c *Client) Starts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starts
}

// Verifier returns the verify.CertVerifier of a certificate witness, which
// asks the child; for x509 witnesses it is also a verify.CertExpiry, whose
// answers come with Verify's and are kept here. No child starts yet, and
// the trust is not loaded before the first Verify: a trust the child cannot
// load is then each Verify's refusal.
func (c *Client) Verifier(k *policy.Key) (verify.CertVerifier, error) {
	tj, sum, err := encodeTrust(k)
	if err != nil {
		return nil, err
	}
	r := &remote{c: c, trust: tj, sum: sum}
	if k.Kind == policy.WitnessX509 {
		return &expiring{r}, nil
	}
	return r, nil
}

type remote struct {
	c     *Client
	trust []byte
	sum   [sha256.Size]byte
}

var _ verify.CertVerifier = (*remote)(nil)

func (r *remote) Verify(digest string, sig verify.CertSignature) error {
	_, err := r.verify(digest, sig)
	return err
}

// verify asks the child; a refusal is an error, and the reply comes back
// only with an accepted signature.
func (r *remote) verify(digest string, sig verify.CertSignature) (*reply, error) {
	rep, err := r.c.call(&request{Op: opVerify, Trust: r.trust, Digest: digest, Sig: sig})
	if err != nil {
		return nil, err
	}
	if rep.Refusal != "" {
		return nil, refusalOf(rep)
	}
	return rep, nil
}

// expiring is an x509 witness's verifier: its verdicts end with time.
type expiring struct{ *remote }

var _ verify.CertExpiry = expiring{}

func (e expiring) Verify(digest string, sig verify.CertSignature) error {
	rep, err := e.verify(digest, sig)
	if err != nil {
		return err
	}
	e.c.keepUntil(untilKey(e.sum, sig), rep.Until)
	return nil
}

// ValidUntil answers from what Verify learnt. Only a signature verified by
// an earlier verifier of the same trust (before a bundle reload) that is no
// longer kept is asked of the child; when that fails the verdict ends now
// (fail closed) until the signature is verified again.
func (e expiring) ValidUntil(sig verify.CertSignature) time.Time {
	key := untilKey(e.sum, sig)
	e.c.mu.Lock()
	u, ok := e.c.until[key]
	e.c.mu.Unlock()
	if !ok {
		rep, err := e.c.call(&request{Op: opUntil, Trust: e.trust, Sig: sig})
		if err == nil && rep.Refusal != "" {
			err = refusalOf(rep)
		}
		if err != nil {
			e.c.logger().Error("certificate verifier: a signature's end of validity is unknown: its verdict ends now", "error", err)
			return time.Now()
		}
		u = rep.Until
		e.c.keepUntil(key, u)
	}
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(0, u)
}

func untilKey(trust [sha256.Size]byte, sig verify.CertSignature) [sha256.Size]byte {
	h := sha256.New()
	h.Write(trust[:])
	fmt.Fprintf(h, "%d:%s%d:%s", len(sig.Format), sig.Format, len(sig.MediaType), sig.MediaType)
	h.Write(sig.Blob)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *Client) keepUntil(k [sha256.Size]byte, u int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.until[k]; !ok && len(c.until) >= maxUntil {
		for old := range c.until {
			delete(c.until, old)
			break
		}
	}
	c.until[k] = u
}

func (c *Client) logger() *slog.Logger {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log
}

// conn is one running child.
type conn struct {
	pid  int
	kill func()       // ends the child now; idempotent
	wait func() error // reaps it, once its stdout has ended
	in   *os.File     // its stdin
	out  *os.File     // its stdout

	wsem chan struct{} // one frame written at a time

	// Under Client.mu:
	pending  map[uint64]chan *reply
	inflight int
	lastUse  time.Time
	idle     *time.Timer
	err      error // why it ended; set before done is closed

	done chan struct{} // closed when its replies end
}

// errIdle ends a child the client closed for lack of requests.
var errIdle = errors.New("the certificate verifier process was idle and was stopped")

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", verify.ErrVerifierUnavailable, err)
}

// call sends req and waits for its reply, at most the client's timeout.
// Every error wraps verify.ErrVerifierUnavailable.
func (c *Client) call(req *request) (*reply, error) {
	deadline := time.Now().Add(c.timeout)
	cn, ch, err := c.begin(req, deadline)
	if err != nil {
		return nil, unavailable(err)
	}
	defer c.end(cn, req.ID)
	b, err := json.Marshal(req)
	if err != nil {
		return nil, unavailable(err)
	}
	if len(b) > maxRequest {
		return nil, unavailable(fmt.Errorf("request of %d bytes, over the %d the process takes", len(b), maxRequest))
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case cn.wsem <- struct{}{}:
	case <-cn.done:
		return nil, unavailable(cn.err)
	case <-timer.C:
		return nil, unavailable(c.fail(cn, fmt.Errorf("request not sent within %s", c.timeout)))
	}
	_ = cn.in.SetWriteDeadline(deadline)
	err = writeFrame(cn.in, b)
	<-cn.wsem
	if err != nil {
		return nil, unavailable(c.fail(cn, fmt.Errorf("sending a request: %w", err)))
	}
	select {
	case rep := <-ch:
		return rep, nil
	case <-cn.done:
		return nil, unavailable(cn.err)
	case <-timer.C:
		return nil, unavailable(c.fail(cn, fmt.Errorf("no reply within %s", c.timeout)))
	}
}

// begin returns the running child, started if need be, with req registered
// as pending under a fresh ID.
func (c *Client) begin(req *request, deadline time.Time) (*conn, chan *reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.conn == nil {
		if wait := time.Until(c.lastStart.Add(c.backoff)); wait > 0 {
			if c.startErr != nil {
				return nil, nil, c.startErr
			}
			if time.Now().Add(wait).After(deadline) {
				return nil, nil, fmt.Errorf("the process ended %s after it started, and is not restarted sooner than %s after", time.Since(c.lastStart).Round(time.Millisecond), c.backoff)
			}
			c.mu.Unlock()
			time.Sleep(wait)
			c.mu.Lock()
			continue
		}
		c.lastStart = time.Now()
		cn, err := c.spawn()
		c.startErr = err
		if err != nil {
			c.log.Error("certificate verifier: cannot start the process: signatures of x509 and sigstore witnesses count for nothing", "error", err)
			return nil, nil, err
		}
		c.starts++
		c.log.Info("certificate verifier: process started", "pid", cn.pid)
		c.conn = cn
		go c.read(cn)
	}
	cn := c.conn
	c.nextID++
	req.ID = c.nextID
	ch := make(chan *reply, 1)
	cn.pending[req.ID] = ch
	cn.inflight++
	return cn, ch, nil
}

// end forgets request id and, when cn has no request left, arms its idle
// timer.
func (c *Client) end(cn *conn, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(cn.pending, id)
	cn.inflight--
	cn.lastUse = time.Now()
	if cn.inflight > 0 || cn.err != nil {
		return
	}
	if cn.idle == nil {
		cn.idle = time.AfterFunc(c.idle, func() { c.idleCheck(cn) })
	} else {
		cn.idle.Reset(c.idle)
	}
}

// idleCheck stops cn when it has had no request for the idle time: its
// stdin closes, so it exits.
func (c *Client) idleCheck(cn *conn) {
	c.mu.Lock()
	if c.conn != cn || cn.inflight > 0 || cn.err != nil {
		c.mu.Unlock()
		return
	}
	if left := c.idle - time.Since(cn.lastUse); left > 0 {
		cn.idle.Reset(left)
		c.mu.Unlock()
		return
	}
	cn.err, c.conn = errIdle, nil
	c.mu.Unlock()
	cn.in.Close()
	// A child that does not exit on EOF is killed.
	time.AfterFunc(c.timeout, cn.kill)
}

// fail ends cn for err (the first reason wins), logs it and returns the
// reason cn ended.
func (c *Client) fail(cn *conn, err error) error {
	c.mu.Lock()
	first := cn.err == nil
	if first {
		cn.err = err
	}
	if c.conn == cn {
		c.conn = nil
	}
	err = cn.err
	c.mu.Unlock()
	if first {
		c.logger().Error("certificate verifier: process killed: its signatures are judged again later", "pid", cn.pid, "error", err)
	}
	cn.kill()
	cn.out.Close() // the reader ends at once
	return err
}

// read delivers cn's replies until its stdout ends or carries anything
// but replies to pending requests; then cn is ended and reaped.
func (c *Client) read(cn *conn) {
	var err error
	for {
		var b []byte
		if b, err = readFrame(cn.out, maxReply); err != nil {
			break
		}
		var rep reply
		if err = json.Unmarshal(b, &rep); err != nil {
			err = fmt.Errorf("a reply is not JSON: %w", err)
			break
		}
		c.mu.Lock()
		ch, ok := cn.pending[rep.ID]
		delete(cn.pending, rep.ID)
		c.mu.Unlock()
		if !ok {
			err = fmt.Errorf("a reply to request %d, which is not waiting", rep.ID)
			break
		}
		ch <- &rep
	}
	if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
		err = errors.New("the process exited")
	} else {
		err = fmt.Errorf("bad reply: %w", err)
	}
	c.fail(cn, err)
	cn.in.Close()
	close(cn.done)
	werr := cn.wait()
	c.mu.Lock()
	idle := cn.err == errIdle
	c.mu.Unlock()
	if idle {
		c.logger().Info("certificate verifier: idle process exited", "pid", cn.pid)
	} else if werr != nil {
		c.logger().Error("certificate verifier: process ended", "pid", cn.pid, "error", werr)
	}
}

// spawnExec starts the full binary's Command with pipes for stdin and
// stdout (os.Pipe, so that writes take a deadline).
func (c *Client) spawnExec() (*conn, error) {
	path, err := c.find()
	if err != nil {
		return nil, c.notFound(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(path, Command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, c.stderr
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, c.notFound(fmt.Errorf("%s %s: %w", path, Command, err))
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill() }) }
	return newConn(cmd.Process.Pid, kill, cmd.Wait, inW, outR), nil
}

func (c *Client) notFound(err error) error {
	return fmt.Errorf("cannot run nri-csig %s, the process that verifies certificate witnesses (x509, sigstore) for nri-csigd: %w: install nri-csig (the package puts it at /usr/bin/nri-csig, beside /usr/bin/nri-csigd); until then those witnesses' signatures count for nothing", Command, err)
}

func newConn(pid int, kill func(), wait func() error, in, out *os.File) *conn {
	return &conn{pid: pid, kill: kill, wait: wait, in: in, out: out, wsem: make(chan struct{}, 1),
		pending: map[uint64]chan *reply{}, done: make(chan struct{})}
}
