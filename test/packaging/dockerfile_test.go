package packaging_test

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/herald-dev/herald/controllers/resources"
)

// dockerStage is one FROM … stage of the Dockerfile: its base image and
// its instructions, continuation lines joined.
type dockerStage struct {
	from  string
	lines []string
}

func parseDockerfile(t *testing.T) (args map[string]string, stages []dockerStage) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args = map[string]string{}
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		instr := strings.Join(strings.Fields(cur.String()), " ")
		cur.Reset()
		switch fields := strings.Fields(instr); strings.ToUpper(fields[0]) {
		case "FROM":
			from := fields[len(fields)-1]
			if len(fields) >= 4 && strings.EqualFold(fields[len(fields)-2], "AS") {
				from = fields[len(fields)-3]
			}
			stages = append(stages, dockerStage{from: from})
		case "ARG":
			if len(stages) == 0 {
				if k, v, ok := strings.Cut(fields[1], "="); ok {
					args[k] = v
				}
			}
			fallthrough
		default:
			if len(stages) > 0 {
				stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, instr)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	return args, stages
}

// TestDockerfile checks the image the Dockerfile describes without a
// container engine: a Go build stage at least as new as go.mod asks,
// building static binaries; a distroless or scratch runtime stage running
// them as the non-root user the operator's pods run as, from the paths the
// operator's containers call them by.
func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t)
	build, runtime := stages[0], stages[len(stages)-1]

	goVersion := strings.ReplaceAll(build.from, "${GO_VERSION}", args["GO_VERSION"])
	m := regexp.MustCompile(`^golang:(\d+\.\d+(\.\d+)?)`).FindStringSubmatch(goVersion)
	if m == nil {
		t.Fatalf("build stage FROM %s, want golang:<version>", build.from)
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+(\.\d+)?)\s*$`).FindSubmatch(data)
	if goMod == nil {
		t.Fatal("go.mod has no go directive")
	}
	if olderGo(m[1], string(goMod[1])) {
		t.Errorf("build stage Go %s is older than go.mod's go %s", m[1], goMod[1])
	}
	buildText := strings.Join(build.lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build", "./cmd/" + resources.Binary + " ", "./cmd/" + resources.DispatcherBinary} {
		if !strings.Contains(buildText, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}

	if !strings.HasPrefix(runtime.from, "gcr.io/distroless/static") && runtime.from != "scratch" {
		t.Errorf("runtime stage FROM %s, want distroless/static or scratch", runtime.from)
	}
	var user, entrypoint string
	copied := map[string]bool{} // paths in the image of the files copied
	for _, l := range runtime.lines {
		fields := strings.Fields(l)
		switch strings.ToUpper(fields[0]) {
		case "USER":
			user = fields[1]
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(strings.TrimPrefix(l, fields[0]))
		case "COPY":
			var srcs []string
			for _, f := range fields[1 : len(fields)-1] {
				if !strings.HasPrefix(f, "--") {
					srcs = append(srcs, f)
				}
			}
			dst := fields[len(fields)-1]
			for _, src := range srcs {
				if strings.HasSuffix(dst, "/") {
					copied[dst+filepath.Base(src)] = true
				} else {
					copied[dst] = true
				}
			}
		}
	}
	uid := fmt.Sprint(resources.NonRootUID)
	if user != uid+":"+uid {
		t.Errorf("USER %q, want %s:%s (resources.NonRootUID, the operator's runAsUser)", user, uid, uid)
	}
	// The operator starts adapters with command [resources.Binary] and
	// dispatchers with [resources.DispatcherBinary]: both must be on
	// distroless's PATH.
	for _, b := range []string{resources.Binary, resources.DispatcherBinary} {
		if !copied["/usr/local/bin/"+b] {
			t.Errorf("%s not copied to /usr/local/bin/%s (on PATH); copied %v", b, b, sortedKeys(copied))
		}
	}
	if want := fmt.Sprintf(`["/usr/local/bin/%s"]`, resources.Binary); entrypoint != want {
		t.Errorf("ENTRYPOINT %s, want %s", entrypoint, want)
	}
}

// TestDockerBuildContext checks that the image's binaries build, as the
// Dockerfile builds them, from what .dockerignore lets into the build
// context (see heraldBinary), and that they are static.
func TestDockerBuildContext(t *testing.T) {
	dir := filepath.Dir(heraldBinary(t))
	for _, name := range []string{resources.Binary, resources.DispatcherBinary} {
		f, err := elf.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("the %s binary is dynamically linked; distroless/static has no libc", name)
			}
		}
		f.Close()
	}
}

var heraldBuild struct {
	once sync.Once
	bin  string
	err  error
}

// heraldBinary copies what .dockerignore lets into the Docker build
// context to a temporary directory and builds the herald and
// herald-dispatcher binaries there the way the Dockerfile does
// (CGO_ENABLED=0, -mod=readonly, -trimpath), once per test run, and returns
// the herald binary's path; herald-dispatcher is beside it. A missing
// package in the context fails the build.
func heraldBinary(t *testing.T) string {
	t.Helper()
	patterns := dockerignore(t)
	heraldBuild.once.Do(func() {
		ctxDir := filepath.Join(workDir, "context")
		var files int
		err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repoRoot, path)
			if rel == "." {
				return nil
			}
			if ignored(patterns, rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			files++
			return copyFile(path, filepath.Join(ctxDir, rel))
		})
		if err != nil {
			heraldBuild.err = err
			return
		}
		binDir := filepath.Join(workDir, "bin")
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", binDir+"/", "./cmd/herald", "./cmd/herald-dispatcher")
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			heraldBuild.err = fmt.Errorf("go build ./cmd/herald ./cmd/herald-dispatcher in the Docker build context (%d files): %v\n%s", files, err, out)
			return
		}
		heraldBuild.bin = filepath.Join(binDir, "herald")
	})
	if heraldBuild.err != nil {
		t.Fatal(heraldBuild.err)
	}
	return heraldBuild.bin
}

// dockerignore reads .dockerignore. The test supports the subset the file
// uses, and refuses the rest: one top-level name or glob per line.
func dockerignore(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.ContainsAny(l, "!/") || strings.Contains(l, "**") {
			t.Fatalf(".dockerignore pattern %q: this test knows only top-level names and globs", l)
		}
		out = append(out, l)
	}
	return out
}

// ignored says whether a top-level pattern excludes rel (Docker matches
// patterns against the path from the context root, and an excluded
// directory excludes everything below it).
func ignored(patterns []string, rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, parts[0]); ok {
			return true
		}
		// "*.md"-style patterns match at the top level only, as in Docker.
	}
	return false
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// olderGo says whether Go version a (1.26 or 1.26.8) is older than b. An
// image tag without a patch release is the newest patch of that minor.
func olderGo(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range 3 {
		if i >= len(pa) {
			return false
		}
		if i >= len(pb) {
			return false
		}
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return false
}
