package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTestCodeInBinary fails when the herald binary links a package meant
// for tests: the standard library's testing (which registers its -test.*
// flags), or one of Herald's test helpers.
func TestNoTestCodeInBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	forbidden := map[string]bool{
		"testing": true,
		"github.com/herald-dev/herald/internal/natstest": true,
		"github.com/herald-dev/herald/internal/testenv":  true,
	}
	for _, p := range deps {
		if forbidden[p] || strings.HasPrefix(p, "sigs.k8s.io/controller-runtime/pkg/envtest") {
			t.Errorf("the herald binary links %s, a package for tests", p)
		}
	}
}
