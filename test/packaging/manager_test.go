package packaging_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestManagerAcceptsDeployedConfig gives the herald binary (heraldBinary)
// the command line and environment of the operator container of each chart
// value set and of config/default:
//
//   - with -h appended, every flag must be one `herald manager` defines;
//   - run as is (bundled NATS only: the external set names certificate
//     files the chart does not render), with the files of the rendered
//     Secrets it mounts, the manager must get past parsing and validating
//     its configuration and be waiting for NATS, not exit.
func TestManagerAcceptsDeployedConfig(t *testing.T) {
	bin := heraldBinary(t)

	cases := []struct {
		name string
		objs []*unstructured.Unstructured
		run  bool
	}{
		{"chart default", mustRender(t, defaultValues, "herald-system").objs, true},
		{"chart ha", mustRender(t, haValues, "herald-system").objs, true},
		{"chart monitoring", mustRender(t, monitoringValues, "herald-system").objs, true},
		{"chart external", mustRender(t, externalValues, "herald-system").objs, false},
		{"config/default", buildDefault(t), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d appsv1.Deployment
			mustConvert(t, tc.objs, "Deployment", "herald-manager", &d)
			c := d.Spec.Template.Spec.Containers[0]
			if len(c.Command) != 1 || c.Command[0] != "herald" || len(c.Args) == 0 || c.Args[0] != "manager" {
				t.Fatalf("container runs %q %q, want herald manager …", c.Command, c.Args)
			}
			env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					t.Fatalf("env %s comes from %v; this test gives only values", e.Name, e.ValueFrom)
				}
				env = append(env, e.Name+"="+e.Value)
			}

			help := exec.Command(bin, append(append([]string{}, c.Args...), "-h")...)
			help.Env = env
			if out, err := help.CombinedOutput(); err != nil {
				t.Errorf("herald %s -h: %v\n%s", strings.Join(c.Args, " "), err, lastLines(out, 5))
			}
			if !tc.run {
				return
			}

			// The files of the container's Secret volumes, rendered by the
			// chart, stand in a temporary directory for each mount path.
			args := slices.Clone(c.Args)
			r := &rendered{objs: tc.objs}
			for _, m := range c.VolumeMounts {
				for _, vol := range d.Spec.Template.Spec.Volumes {
					if vol.Name != m.Name || vol.Secret == nil {
						continue
					}
					dir := t.TempDir()
					data := secretData(t, r, vol.Secret.SecretName)
					items := vol.Secret.Items
					if len(items) == 0 {
						for k := range data {
							items = append(items, corev1.KeyToPath{Key: k, Path: k})
						}
					}
					for _, it := range items {
						if err := os.WriteFile(filepath.Join(dir, it.Path), []byte(data[it.Key]), 0o600); err != nil {
							t.Fatal(err)
						}
					}
					for i := range args {
						args[i] = strings.ReplaceAll(args[i], m.MountPath+"/", dir+"/")
					}
				}
			}
			var out bytes.Buffer
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				t.Errorf("herald %s exited (%v) instead of waiting for NATS:\n%s", strings.Join(c.Args, " "), err, lastLines(out.Bytes(), 10))
			case <-time.After(2 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
