package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/coreos/go-systemd/v22/journal"

	"github.com/nri-csig/nri-csig/pkg/audit"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

type benchImages struct {
	digests []string
	repos   map[string][]string
}

func (b benchImages) Resolve(context.Context, string) ([]string, map[string][]string, error) {
	return b.digests, b.repos, nil
}

// benchDecider answers at once, so that the benchmark measures the plugin.
type benchDecider struct{ v policy.Verdict }

func (d benchDecider) Decide(context.Context, policy.Subject) policy.Verdict { return d.v }

// benchNowDecider and benchNowImages also answer at once (NowDecider,
// NowResolver), as the daemon's decider and image index do for an image
// whose signatures the node holds: the plugin's common path.
type benchNowDecider struct{ benchDecider }

func (d benchNowDecider) DecideNow(policy.Subject) (policy.Verdict, bool) { return d.v, true }

type benchNowImages struct{ benchImages }

func (b benchNowImages) ResolveNow(string) ([]string, map[string][]string, bool) {
	return b.digests, b.repos, true
}

type discardSink struct{}

func (discardSink) Write(audit.Record) {}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkContainer measures the plugin's own CPU for one container: the
// CreateContainer handler (decision, annotations), the validation phase and
// the audit record, with a decider and a resolver that answer at once.
// cpu-ns/op is the process's CPU time per container. path=now decides on
// the handler's goroutine (NowDecider, the daemon's common case);
// path=goroutine through Decide on a goroutine bounded by the deadline (an
// image or signatures not known yet, a refusal by a policy).
//
//	go test -run '^$' -bench BenchmarkContainer -benchmem ./pkg/plugin/
//	NRI_CSIG_BENCH_JOURNALD=1 go test -run '^$' -bench BenchmarkContainer/path=now/audit=journald -benchtime 2000x ./pkg/plugin/
func BenchmarkContainer(b *testing.B) {
	v := policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod", Digest: trustedDigest,
		Reason: `trusted by policy "prod": signed by witness ci`, Trusted: true, Witnesses: []string{"ci"}, Mode: "enforce"}
	images := benchImages{digests: []string{trustedDigest}, repos: map[string][]string{trustedDigest: {"registry.example/app"}}}
	for _, path := range []string{"now", "goroutine"} {
		for _, sink := range []struct {
			name string
			s    audit.Sink
		}{
			{"audit=json", audit.NewJSON(&audit.LockedWriter{W: io.Discard}, "component", "nri-csig")},
			{"audit=slog", audit.Log{Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}},
			// Real journald, only with NRI_CSIG_BENCH_JOURNALD=1, as each
			// iteration adds a journal record: run it with a bounded -benchtime.
			{"audit=journald", audit.Journald{}},
			{"audit=none", discardSink{}},
		} {
			b.Run("path="+path+"/"+sink.name, func(b *testing.B) {
				if _, isJournald := sink.s.(audit.Journald); isJournald {
					if os.Getenv("NRI_CSIG_BENCH_JOURNALD") != "1" {
						b.Skip("writes to the journal: set NRI_CSIG_BENCH_JOURNALD=1 and a bounded -benchtime (e.g. 2000x)")
					}
					if !journal.Enabled() {
						b.Fatal("NRI_CSIG_BENCH_JOURNALD=1 but there is no journald socket")
					}
				}
				var d Decider = benchDecider{v}
				var imgs ImageResolver = images
				if path == "now" {
					d, imgs = benchNowDecider{benchDecider{v}}, benchNowImages{images}
				}
				p := New(d, imgs, slog.New(slog.DiscardHandler), Options{Audit: sink.s})
				pod := &api.PodSandbox{Id: "pod-1", Name: "web", Namespace: "prod", Uid: "0d6f"}
				ids := make([]string, 1024)
				for i := range ids {
					ids[i] = fmt.Sprintf("ctr-%04d", i)
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					ctr := &api.Container{Id: ids[i%len(ids)], PodSandboxId: pod.Id, Name: "app",
						Image: &api.Image{Name: "registry.example/app:1", ConfigDigest: configDigest, Digest: trustedDigest}}
					if _, _, err := p.CreateContainer(ctx, pod, ctr); err != nil {
						b.Fatal(err)
					}
					if err := p.ValidateContainerAdjustment(ctx, &api.ValidateContainerAdjustmentRequest{Pod: pod, Container: ctr}); err != nil {
						b.Fatal(err)
					}
					_ = p.RemoveContainer(ctx, pod, ctr)
				}
				// CPU time, not wall time: other work on a shared machine does not count.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
