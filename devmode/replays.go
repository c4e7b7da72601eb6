package devmode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/replay"
)

// replayFile, in the data directory, records each Replay's progress, so
// that a restarted herald dev resumes a Replay where it stopped and never
// runs a completed one again.
const replayFile = "herald-dev-replays.json"

// replayRecord is a Replay's entry in replayFile.
type replayRecord struct {
	// Spec is the spec the status is about: a Replay whose spec changed is
	// another run.
	Spec   v1alpha1.ReplaySpec   `json:"spec"`
	Status v1alpha1.ReplayStatus `json:"status"`
}

// replays carries out the Replays of the manifests, one goroutine each,
// with the operator's steps (replay.Advance).
type replays struct {
	js  jetstream.JetStream
	dir string
	log *slog.Logger

	mu      sync.Mutex
	records map[string]replayRecord
	running map[string]*runningReplay
	wg      sync.WaitGroup
}

type runningReplay struct {
	spec   v1alpha1.ReplaySpec
	cancel context.CancelFunc
}

func newReplays(js jetstream.JetStream, dir string, log *slog.Logger) (*replays, error) {
	rs := &replays{js: js, dir: dir, log: log, records: map[string]replayRecord{}, running: map[string]*runningReplay{}}
	b, err := os.ReadFile(filepath.Join(dir, replayFile))
	if errors.Is(err, fs.ErrNotExist) {
		return rs, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &rs.records); err != nil {
		return nil, errors.New(replayFile + ": " + err.Error())
	}
	return rs, nil
}

// sync starts the Replays of list that are neither running nor complete,
// and stops the running ones no longer in list or whose spec changed.
func (rs *replays) sync(ctx context.Context, list []ResolvedReplay) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	want := map[string]ResolvedReplay{}
	for _, rr := range list {
		want[rr.Key()] = rr
	}
	for k, run := range rs.running {
		if rr, ok := want[k]; !ok || !equality.Semantic.DeepEqual(rr.Replay.Spec, run.spec) {
			run.cancel()
			delete(rs.running, k)
		}
	}
	for k, rr := range want {
		if _, ok := rs.running[k]; ok {
			continue
		}
		rec, ok := rs.records[k]
		if !ok || !equality.Semantic.DeepEqual(rec.Spec, rr.Replay.Spec) {
			rec = replayRecord{Spec: rr.Replay.Spec}
		}
		if rec.Status.CompletionTime != nil {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		own := &runningReplay{spec: rr.Replay.Spec, cancel: cancel}
		rs.running[k] = own
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			rs.run(rctx, rr, rec.Status, own)
		}()
	}
}

// run takes rr's steps from status until it is complete or ctx ends; own is
// its entry in rs.running, which a newer run of the same Replay replaces.
func (rs *replays) run(ctx context.Context, rr ResolvedReplay, status v1alpha1.ReplayStatus, own *runningReplay) {
	r := rr.Replay.DeepCopy()
	r.Status = status
	// The spec names the run: a changed Replay's copies are new messages.
	spec, _ := json.Marshal(r.Spec)
	sum := sha256.Sum256(append([]byte(rr.Key()+"\n"), spec...))
	r.UID = types.UID(hex.EncodeToString(sum[:8]))
	log := rs.log.With("replay", rr.Key(), "subscription", r.Namespace+"/"+r.Spec.Subscription)
	if status.StartTime == nil {
		log.Info("replay: starting")
	}
	for ctx.Err() == nil {
		done, err := replay.Advance(ctx, rs.js, r, rr.Target)
		if !rs.record(rr.Key(), own, replayRecord{Spec: r.Spec, Status: r.Status}) {
			return // replaced by a newer run
		}
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("replay: step failed; retrying", "replayed", r.Status.Replayed, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		case done:
			log.Info("replay: complete", "replayed", r.Status.Replayed, "took", replay.Elapsed(r).Round(time.Millisecond))
			rs.mu.Lock()
			if rs.running[rr.Key()] == own {
				delete(rs.running, rr.Key())
			}
			rs.mu.Unlock()
			return
		}
	}
}

// record saves rec as key's record, atomically, while own is key's
// running entry (or key runs nothing, own having completed); it reports
// false when a newer run replaced own.
func (rs *replays) record(key string, own *runningReplay, rec replayRecord) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if cur, ok := rs.running[key]; ok && cur != own {
		return false
	}
	rs.records[key] = rec
	b, err := json.MarshalIndent(rs.records, "", "  ")
	if err == nil {
		tmp := filepath.Join(rs.dir, replayFile+".tmp")
		if err = os.WriteFile(tmp, append(b, '\n'), 0o644); err == nil {
			err = os.Rename(tmp, filepath.Join(rs.dir, replayFile))
		}
	}
	if err != nil {
		rs.log.Warn("replay: cannot record progress", "replay", key, "error", err)
	}
	return true
}

// stop stops every running Replay and waits for them.
func (rs *replays) stop() {
	rs.mu.Lock()
	for k, run := range rs.running {
		run.cancel()
		delete(rs.running, k)
	}
	rs.mu.Unlock()
	rs.wg.Wait()
}
