package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nri-csig/nri-csig/pkg/guard"
	"github.com/nri-csig/nri-csig/pkg/nodeconfig"
)

// syncBuffer is a log sink safe for the learner's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func guardDaemon(node *nodeconfig.Config) (*daemon, *syncBuffer) {
	logs := &syncBuffer{}
	return &daemon{node: node, log: slog.New(slog.NewTextHandler(logs, nil))}, logs
}

// protects reports whether the guard in force protects p.
func protects(d *daemon, p string) bool {
	return slices.Contains(d.integrityInForce().Guard.Protected(), p)
}

var errNotServing = errors.New("connection refused")

// fast is rootLearning for tests: nothing here waits long unless told to.
var fast = rootLearning{first: time.Millisecond, max: 4 * time.Millisecond, attempt: time.Second, warnAfter: time.Hour, wait: 5 * time.Second}

// The root is learned after containerd starts answering, and the guard
// built before with the default root gives way to one with the learned root.
func TestRootLearnedInBackground(t *testing.T) {
	d, logs := guardDaemon(nodeconfig.Default())
	var calls atomic.Int32
	answer := make(chan struct{})
	d.startLearner(t.Context(), d.node, func(ctx context.Context) (string, error) {
		if calls.Add(1) <= 3 {
			return "", errNotServing
		}
		<-answer
		return "/data/ctrd", nil
	}, rootLearning{first: time.Millisecond, max: 4 * time.Millisecond, attempt: time.Second, warnAfter: time.Hour, wait: time.Millisecond})
	// Not answering yet: after the bounded wait, the defaults.
	if !protects(d, guard.DefaultContainerdRoot) || protects(d, "/data/ctrd") {
		t.Fatalf("before containerd answers, protected = %v; want the default root", d.integrityInForce().Guard.Protected())
	}
	close(answer)
	<-d.guard.learning
	if !protects(d, "/data/ctrd") || protects(d, guard.DefaultContainerdRoot) {
		t.Errorf("after containerd answered, protected = %v; want /data/ctrd, not the default", d.integrityInForce().Guard.Protected())
	}
	if got := strings.Count(logs.String(), "containerd root learned"); got != 1 || !strings.Contains(logs.String(), "root=/data/ctrd") || !strings.Contains(logs.String(), "attempts=4") {
		t.Errorf("log = %q; want one \"containerd root learned\" with root=/data/ctrd attempts=4", logs)
	}
	// The learner runs once per daemon.
	d.startLearner(t.Context(), d.node, func(context.Context) (string, error) { t.Error("asked again"); return "", nil }, fast)
}

// A decision while the root is being learned waits for it, bounded.
func TestDecisionWaitsForRoot(t *testing.T) {
	d, _ := guardDaemon(nodeconfig.Default())
	answer := make(chan struct{})
	d.startLearner(t.Context(), d.node, func(ctx context.Context) (string, error) {
		select {
		case <-answer:
			return "/data/ctrd", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}, fast)
	time.AfterFunc(20*time.Millisecond, func() { close(answer) })
	if !protects(d, "/data/ctrd") {
		t.Errorf("a decision made while containerd was about to answer: protected = %v; want the learned root", d.integrityInForce().Guard.Protected())
	}

	// containerd never answers: the decision waits no longer than the bound.
	d, _ = guardDaemon(nodeconfig.Default())
	ctx, cancel := context.WithCancel(t.Context())
	lr := fast
	lr.wait = 30 * time.Millisecond
	d.startLearner(ctx, d.node, func(context.Context) (string, error) { return "", errNotServing }, lr)
	start := time.Now()
	if !protects(d, guard.DefaultContainerdRoot) {
		t.Errorf("protected = %v; want the default root", d.integrityInForce().Guard.Protected())
	}
	if took := time.Since(start); took < lr.wait || took > 2*time.Second {
		t.Errorf("the decision waited %s; want about %s", took, lr.wait)
	}
	cancel()
	<-d.guard.learning // the learner ends with its context
}

// Still unknown after warnAfter: one warning naming guard.containerdRoot, and
// decisions stop waiting; the learner keeps trying.
func TestRootStillUnknownWarns(t *testing.T) {
	d, logs := guardDaemon(nodeconfig.Default())
	release := make(chan struct{})
	lr := fast
	lr.warnAfter, lr.wait = 20*time.Millisecond, time.Hour
	d.startLearner(t.Context(), d.node, func(context.Context) (string, error) {
		select {
		case <-release:
			return "/data/ctrd", nil
		default:
			return "", errNotServing
		}
	}, lr)
	<-d.guard.learning // settled by the warning, not by an answer
	if !protects(d, guard.DefaultContainerdRoot) {
		t.Errorf("protected = %v; want the default root while still unknown", d.integrityInForce().Guard.Protected())
	}
	close(release)
	if got := strings.Count(logs.String(), "containerd's root is still unknown"); got != 1 || !strings.Contains(logs.String(), "guard.containerdRoot") {
		t.Errorf("log = %q; want one warning naming guard.containerdRoot", logs)
	}
	if err := waitFor(func() bool { return protects(d, "/data/ctrd") }); err != nil {
		t.Errorf("the root learned after the warning was not put in force: protected = %v", d.integrityInForce().Guard.Protected())
	}
}

// A node config that names containerd's root needs no learner, and decisions
// never wait.
func TestNamedRootNotLearned(t *testing.T) {
	node := nodeconfig.Default()
	node.Guard.Paths.ContainerdRoot = "/srv/ctrd"
	d, _ := guardDaemon(node)
	d.startLearner(t.Context(), node, func(context.Context) (string, error) {
		t.Error("containerd was asked for its root")
		return "", nil
	}, fast)
	if d.guard.learning != nil {
		t.Fatal("a learner started")
	}
	if !protects(d, "/srv/ctrd") {
		t.Errorf("protected = %v; want /srv/ctrd", d.integrityInForce().Guard.Protected())
	}
}

func waitFor(ok func() bool) error {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if ok() {
			return nil
		}
	}
	return errors.New("timed out")
}
