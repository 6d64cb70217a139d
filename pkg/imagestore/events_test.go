package imagestore

import (
	"context"
	"errors"
	"reflect"
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
