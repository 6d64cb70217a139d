package imagestore

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
)

type fakeEvents struct {
	envs chan *events.Envelope
	errs chan error
}

func (f fakeEvents) Subscribe(context.Context, ...string) (<-chan *events.Envelope, <-chan error) {
	return f.envs, f.errs
}

func (f fakeEvents) send(t *testing.T, ns string, ev any) {
	t.Helper()
	a, err := typeurl.MarshalAny(ev)
	if err != nil {
		t.Fatal(err)
	}
	f.envs <- &events.Envelope{Namespace: ns, Event: a}
}

func wait[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
	var zero T
	return zero
}

// Follow builds once after subscribing, and then each event re-reads only
// its own record: no further List.
func TestFollowAppliesImageEvents(t *testing.T) {
	n := newNode(t)
	_, aCfg := n.image("reg.example/a:1", "a")
	x := New(n, n.cs, "k8s.io")
	sub := fakeEvents{envs: make(chan *events.Envelope), errs: make(chan error)}
	built, changed := make(chan struct{}, 1), make(chan string, 8)
	go x.Follow(t.Context(), sub, func(context.Context) { built <- struct{}{} }, func(_ context.Context, name string) { changed <- name })
	wait(t, built)
	if got, _ := resolve(t, x, aCfg); len(got) != 1 {
		t.Fatalf("Resolve(a) = %v after the build", got)
	}

	m, bCfg := n.image("reg.example/b:1", "b")
	sub.send(t, "other-namespace", &apievents.ImageCreate{Name: "reg.example/b:1"}) // not this index's
	sub.send(t, "k8s.io", &apievents.ImageCreate{Name: "reg.example/b:1"})
	if got := wait(t, changed); got != "reg.example/b:1" {
		t.Fatalf("changed(%q)", got)
	}
	if got, repos := resolve(t, x, bCfg); !reflect.DeepEqual(got, strs(m)) || repos[m.Digest.String()][0] != "reg.example/b" {
		t.Errorf("after the create event Resolve(b) = %v %v", got, repos)
	}
	n.drop("reg.example/b:1")
	sub.send(t, "k8s.io", &apievents.ImageDelete{Name: "reg.example/b:1"})
	wait(t, changed)
	if got, repos := resolve(t, x, bCfg); len(repos) != 0 {
		t.Errorf("after the delete event Resolve(b) = %v %v, want no repository (only the ID records remain)", got, repos)
	}
	if n.lists != 1 {
		t.Errorf("%d Lists, want the one build", n.lists)
	}

	// The stream ends (containerd restarted): subscribe and build again, so
	// that what happened meanwhile is seen.
	_, cCfg := n.image("reg.example/c:1", "c")
	sub.errs <- errors.New("containerd went away")
	wait(t, built)
	if got, _ := resolve(t, x, cCfg); len(got) != 1 {
		t.Errorf("an image pulled while the stream was down: Resolve = %v", got)
	}
	if n.lists != 2 {
		t.Errorf("%d Lists, want one per (re)subscription", n.lists)
	}
}

// A create right after a pull can reach the plugin before the pull's image
// event reaches the index: Resolve waits (up to MissWait) for it instead of
// answering "no such image", and a config that never comes costs MissWait.
func TestResolveWaitsForTheEventInFlight(t *testing.T) {
	n := newNode(t)
	x := New(n, n.cs, "k8s.io")
	sub := fakeEvents{envs: make(chan *events.Envelope), errs: make(chan error)}
	built := make(chan struct{}, 1)
	go x.Follow(t.Context(), sub, func(context.Context) { built <- struct{}{} }, nil)
	wait(t, built)

	m, cfg := n.image("reg.example/late:1", "late")
	type answer struct {
		digests []string
		err     error
	}
	got := make(chan answer, 1)
	go func() {
		ds, _, err := x.Resolve(t.Context(), cfg.Digest.String())
		got <- answer{ds, err}
	}()
	// Send the event only once the resolution is waiting for it.
	for deadline := time.Now().Add(10 * time.Second); x.waiting.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Resolve of a config the index does not hold yet did not wait")
		}
	}
	sub.send(t, "k8s.io", &apievents.ImageCreate{Name: "reg.example/late:1"})
	if a := wait(t, got); a.err != nil || !reflect.DeepEqual(a.digests, strs(m)) {
		t.Fatalf("Resolve while the create event was in flight = %v, %v; want %v", a.digests, a.err, strs(m))
	}

	// A config that never comes: the answer is "none" once MissWait is over.
	if ds, _, err := x.Resolve(t.Context(), "sha256:"+strings.Repeat("0", 64)); err != nil || len(ds) != 0 {
		t.Fatalf("Resolve(unknown) = %v, %v", ds, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if ds, _, err := x.Resolve(ctx, "sha256:"+strings.Repeat("1", 64)); err != nil || len(ds) != 0 {
		t.Fatalf("Resolve(unknown, cancelled) = %v, %v", ds, err)
	}
}
