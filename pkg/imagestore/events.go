package imagestore

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
)

// Follow keeps the index current from containerd's image events until ctx
// ends. It subscribes, then builds the index (so that nothing landing in
// between is missed) and calls built, if set; then it applies each create,
// update and delete of the index's namespace and calls changed, if set, with
// the record's name. When the stream ends (containerd restarted) it
// subscribes and builds again.
func (x *Index) Follow(ctx context.Context, sub events.Subscriber, built func(ctx context.Context), changed func(ctx context.Context, recordName string)) {
	x.following.Store(true)
	for ctx.Err() == nil {
		err := x.follow(ctx, sub, built, changed)
		if ctx.Err() != nil {
			return
		}
		x.log.Warn("imagestore: containerd image events ended; subscribing and rebuilding the image index", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (x *Index) follow(ctx context.Context, sub events.Subscriber, built func(context.Context), changed func(context.Context, string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	envs, errs := sub.Subscribe(ctx, `topic=="/images/create"`, `topic=="/images/update"`, `topic=="/images/delete"`)
	if err := x.Build(ctx); err != nil {
		return err
	}
	x.log.Info("imagestore: image index built", "namespace", x.namespace, "records", x.Len(), "skipped_total", x.Skipped())
	if built != nil {
		go built(ctx) // boot verification must not hold up the events
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case env := <-envs:
			if env == nil {
				return fmt.Errorf("event stream closed")
			}
			if env.Namespace != x.namespace || env.Event == nil {
				continue
			}
			name, ok := imageEventName(env.Event)
			if !ok {
				continue
			}
			if err := x.Update(ctx, name); err != nil {
				x.log.Warn("imagestore: image record not re-read; the index may miss it until the next rebuild", "record", name, "error", err)
				continue
			}
			if changed != nil {
				changed(ctx, name)
			}
		}
	}
}

func imageEventName(a typeurl.Any) (string, bool) {
	ev, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return "", false
	}
	switch e := ev.(type) {
	case *apievents.ImageCreate:
		return e.Name, true
	case *apievents.ImageUpdate:
		return e.Name, true
	case *apievents.ImageDelete:
		return e.Name, true
	}
	return "", false
}
