package imagestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The index answers as the records it was given say, whatever mix of
// names, shared targets, problems, updates and removals: its answers are
// compared, after every change, with ones computed from the records alone.
func TestIndexAgreesWithItsRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dg := func(kind string, i int) string { return digest.FromString(fmt.Sprint(kind, i)).String() }
	configs, manifests := 4, 6
	chains := map[string]string{}
	for i := range configs {
		chains[dg("c", i)] = dg("chain", i%3) // some configs share a chain
	}
	targets := make([][]lead, manifests) // what each target walks to
	for i := range targets {
		c := dg("c", i%configs)
		targets[i] = []lead{{config: c, digests: []string{dg("m", i)}}}
		if i%2 == 1 { // an index above it
			targets[i][0].digests = append(targets[i][0].digests, dg("i", i))
			slices.Sort(targets[i][0].digests)
		}
	}
	names := func(i int) string {
		switch i % 4 {
		case 0:
			return fmt.Sprintf("reg.example/r%d:t%d", i%3, i)
		case 1:
			return fmt.Sprintf("reg.example/r%d@%s", i%3, dg("m", i%manifests))
		case 2:
			return dg("c", i%configs) // an image ID
		}
		return fmt.Sprintf("docker.io/library/r%d:t%d", i%2, i)
	}
	held := map[string]*walkedRecord{}
	x := New(nil, nil, "k8s.io")
	x.built.Store(true) // fed by hand
	for step := range 3000 {
		n := names(rng.IntN(40))
		x.mu.Lock()
		x.remove(n)
		delete(held, n)
		if rng.IntN(3) > 0 {
			w := &walkedRecord{name: n, repo: Repository(n)}
			if tg := rng.IntN(manifests + 1); tg < manifests {
				w.leads = targets[tg]
			}
			if rng.IntN(5) == 0 {
				w.problems = []problem{{digest: dg("bad", rng.IntN(2)), what: "is garbled"}}
			}
			x.add(w, chains, nil)
			held[n] = w
		}
		if step%500 == 0 {
			x.compact()
		}
		x.mu.Unlock()
		if err := agrees(x, held, configs, dg); err != nil {
			t.Fatalf("step %d (record %s): %v", step, n, err)
		}
	}
}

func agrees(x *Index, held map[string]*walkedRecord, configs int, dg func(string, int) string) error {
	if x.Len() != len(held) {
		return fmt.Errorf("Len = %d, want %d", x.Len(), len(held))
	}
	wantCands := map[string][]string{}
	for _, w := range held {
		for _, l := range w.leads {
			for _, d := range l.digests {
				if w.repo != "" {
					wantCands[d] = append(wantCands[d], w.repo)
				} else if _, ok := wantCands[d]; !ok {
					wantCands[d] = nil
				}
			}
		}
	}
	cands, _ := x.Candidates(context.Background())
	if len(cands) != len(wantCands) {
		return fmt.Errorf("%d candidates, want %d", len(cands), len(wantCands))
	}
	for _, c := range cands {
		want := wantCands[c.Digest]
		slices.Sort(want)
		if want = slices.Compact(want); !reflect.DeepEqual(c.Repositories, want) {
			return fmt.Errorf("candidate %s: repositories %v, want %v", c.Digest, c.Repositories, want)
		}
	}
	for i := range configs {
		c := dg("c", i)
		var found, bad []string
		repos := map[string][]string{}
		for n, w := range held {
			leads := false
			for _, l := range w.leads {
				if l.config != c {
					continue
				}
				leads = true
				for _, d := range l.digests {
					found = append(found, d)
					if w.repo != "" && !slices.Contains(repos[d], w.repo) {
						repos[d] = append(repos[d], w.repo)
					}
				}
			}
			if leads || n == c {
				for _, p := range w.problems {
					bad = append(bad, "image record "+n+": "+p.String())
				}
			}
		}
		ds, rs, err := x.Resolve(context.Background(), c)
		if len(found) == 0 {
			slices.Sort(bad)
			if (err != nil) != (len(bad) > 0) || ds != nil || (err != nil && !strings.Contains(err.Error(), strings.Join(bad, "; "))) {
				return fmt.Errorf("Resolve(%s) = %v %v, want nothing and problems %v", c, ds, err, bad)
			}
			continue
		}
		slices.Sort(found)
		for _, r := range repos {
			slices.Sort(r)
		}
		if err != nil || !reflect.DeepEqual(ds, slices.Compact(found)) || !reflect.DeepEqual(rs, repos) {
			return fmt.Errorf("Resolve(%s) = %v %v %v, want %v %v", c, ds, rs, err, found, repos)
		}
		for _, d := range ds {
			if !slices.Contains(x.ConfigsOf(d), c) {
				return fmt.Errorf("ConfigsOf(%s) = %v, lacks %s", d, x.ConfigsOf(d), c)
			}
		}
		if ch, ok := x.ChainID(c); ok && !slices.Contains(x.ConfigsForChainID(ch), c) {
			return fmt.Errorf("ConfigsForChainID(%s) lacks %s", ch, c)
		}
	}
	for n, w := range held {
		var want []string
		for _, l := range w.leads {
			want = append(want, l.digests...)
		}
		slices.Sort(want)
		var got []string
		for _, c := range x.RecordCandidates(n) {
			got = append(got, c.Digest)
		}
		if !reflect.DeepEqual(got, slices.Compact(want)) {
			return fmt.Errorf("RecordCandidates(%s) = %v, want %v", n, got, want)
		}
	}
	return nil
}
