package devmode

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the manifests must stay unchanged before
// herald dev reloads them: editors write a file in several steps.
const DefaultDebounce = 200 * time.Millisecond

// watcher reports changes to the manifests the paths name: the manifest
// files of a directory (not its subdirectories), or a single file. Files
// are watched through their directory, so that editors that replace a file
// by renaming another over it are seen.
type watcher struct {
	fs    *fsnotify.Watcher
	dirs  map[string]bool // directories whose manifest files count
	files map[string]bool // single files
	log   *slog.Logger
}

func newWatcher(paths []string, log *slog.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fs: fw, dirs: map[string]bool{}, files: map[string]bool{}, log: log}
	watched := map[string]bool{}
	for _, p := range paths {
		ap := absPath(p)
		dir := ap
		if fi, err := os.Stat(ap); err == nil && !fi.IsDir() {
			w.files[ap] = true
			dir = filepath.Dir(ap)
		} else {
			w.dirs[ap] = true
		}
		if watched[dir] {
			continue
		}
		if err := fw.Add(dir); err != nil {
			fw.Close()
			return nil, err
		}
		watched[dir] = true
	}
	return w, nil
}

func (w *watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	if w.files[name] {
		return true
	}
	base := filepath.Base(name)
	return w.dirs[filepath.Dir(name)] && IsManifestFile(base) && base[0] != '.'
}

// run sends on changed, without blocking, once the watched manifests have
// been quiet for debounce after a change. It returns when ctx is done.
func (w *watcher) run(ctx context.Context, debounce time.Duration, changed chan<- struct{}) {
	defer w.fs.Close()
	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if w.relevant(ev) {
				timer.Reset(debounce)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching manifests", "error", err)
			timer.Reset(debounce) // events may be lost: reload to be sure
		case <-timer.C:
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}
