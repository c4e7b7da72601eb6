package packaging_test

import (
	"os/exec"
	"strings"
	"testing"
)

// testCode are the packages meant for tests: the standard library's testing
// (which registers its -test.* flags) and Herald's test helpers.
var testCode = map[string]string{
	"testing": "test code",
	"github.com/herald-dev/herald/internal/natstest": "test code",
	"github.com/herald-dev/herald/internal/testenv":  "test code",
	"sigs.k8s.io/controller-runtime/pkg/envtest":     "test code",
}

// controlPlane are what herald-dispatcher must not link: every package
// linked costs a dispatcher Pod memory for its code and data, whether it
// runs or not.
var controlPlane = map[string]string{
	"sigs.k8s.io/controller-runtime":           "the operator",
	"github.com/herald-dev/herald/api":         "the API types, which the dispatch plan replaces",
	"github.com/herald-dev/herald/controllers": "the operator",
	"github.com/herald-dev/herald/compiler":    "the control plane",
	"github.com/herald-dev/herald/provision":   "the control plane",
	"github.com/herald-dev/herald/devmode":     "herald dev",
	"github.com/herald-dev/herald/sources":     "the adapters",
	"github.com/nats-io/nats-server":           "herald dev's embedded NATS server",
	"k8s.io/apiextensions-apiserver":           "herald dev's CRD validation",
	"github.com/google/cel-go":                 "herald dev's CRD validation",
	"k8s.io/client-go/kubernetes":              "typed clients: the dispatcher calls two API endpoints over client-go's rest",
	"k8s.io/client-go/informers":               "informers: the dispatcher watches no API object",
}

// TestBinariesLinks checks what the image's binaries link: neither links
// test code, and herald-dispatcher links the data path only.
func TestBinariesLinks(t *testing.T) {
	for _, tc := range []struct {
		cmd       string
		forbidden []map[string]string
	}{
		{"herald", []map[string]string{testCode}},
		{"herald-dispatcher", []map[string]string{testCode, controlPlane}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/"+tc.cmd)
			cmd.Dir = repoRoot
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("go list -deps: %v\n%s", err, stderr)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 10 || deps[len(deps)-1] != "github.com/herald-dev/herald/cmd/"+tc.cmd {
				t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
			}
			for _, p := range deps {
				for _, m := range tc.forbidden {
					for prefix, why := range m {
						if p == prefix || strings.HasPrefix(p, prefix+"/") {
							t.Errorf("%s links %s (%s)", tc.cmd, p, why)
						}
					}
				}
			}
		})
	}
}
