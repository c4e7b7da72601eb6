package devmode

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestWatcherReportsManifestChanges(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	single := writeFile(t, other, "one.yaml", "")
	w, err := newWatcher([]string{dir, single}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	go w.run(ctx, 20*time.Millisecond, changed)

	expect := func(what string, change func()) {
		t.Helper()
		change()
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("no reload after %s", what)
		}
	}
	expect("a new file in the directory", func() { writeFile(t, dir, "a.yaml", "x") })
	expect("a file renamed over the single file", func() {
		tmp := writeFile(t, other, ".one.yaml.swp", "y")
		if err := os.Rename(tmp, single); err != nil {
			t.Fatal(err)
		}
	})
	expect("a removed file", func() {
		if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
			t.Fatal(err)
		}
	})

	for _, tt := range []struct {
		name string
		want bool
	}{
		{filepath.Join(dir, "b.yml"), true},
		{filepath.Join(dir, "notes.txt"), false},
		{filepath.Join(dir, ".b.yaml"), false},
		{filepath.Join(dir, "sub", "c.yaml"), false},
		{single, true},
		{filepath.Join(other, "two.yaml"), false},
	} {
		if got := w.relevant(fsEvent(tt.name)); got != tt.want {
			t.Errorf("relevant(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func fsEvent(name string) fsnotify.Event { return fsnotify.Event{Name: name, Op: fsnotify.Write} }
