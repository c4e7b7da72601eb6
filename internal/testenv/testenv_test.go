package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDeclares(t *testing.T) {
	for _, tt := range []struct {
		gomod string
		want  bool
	}{
		{"module github.com/herald-dev/herald\n\ngo 1.26\n", true},
		{"// comment\nmodule \"github.com/herald-dev/herald\"\n", true},
		{"module github.com/herald-dev/herald/hack/tools/kube\n", false},
		{"require github.com/herald-dev/herald v0.1.0\n", false},
		{"", false},
	} {
		if got := declares([]byte(tt.gomod), module); got != tt.want {
			t.Errorf("declares(%q) = %v, want %v", tt.gomod, got, tt.want)
		}
	}
}

// TestRepoRoot finds the repository from this package's directory, and
// skips a nested module's go.mod on the way up.
func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", filepath.Join("config", "crd", "bases"), filepath.Join("internal", "testenv", "testenv.go")} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("root %s: %v", root, err)
		}
	}

	nested := filepath.Join(root, "hack", "tools", "kube")
	if _, err := os.Stat(filepath.Join(nested, "go.mod")); err != nil {
		t.Skipf("no nested module to start from: %v", err)
	}
	t.Chdir(nested)
	if got, err := RepoRoot(); err != nil || got != root {
		t.Errorf("from %s: %q, %v; want %s", nested, got, err, root)
	}
}
