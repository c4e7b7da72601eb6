package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// untar reads an archive into a map of name → header and content.
func untar(t *testing.T, b []byte) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		data[h.Name], _ = io.ReadAll(tr)
	}
}

func blob(t *testing.T, data map[string][]byte, digest string) []byte {
	t.Helper()
	b, ok := data["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("no blob %s", digest)
	}
	return b
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "herald")
	conf := filepath.Join(dir, "passwd")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("root:x:0:0::/:/bin/false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := options{
		name: "localhost/herald:dev", entrypoint: "/usr/local/bin/herald", user: "65532:65532", workdir: "/",
		env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}, dirs: []string{"/tmp:1777"},
		files: []string{bin + ":/usr/local/bin/herald", conf + ":/etc/passwd"},
	}
	archive, manifestDigest, _, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	again, _, _, _ := build(o)
	if !bytes.Equal(archive, again) {
		t.Error("two builds of the same image differ")
	}

	_, data := untar(t, archive)
	if string(data["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", data["oci-layout"])
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(data["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, data["index.json"])
	}
	m := index.Manifests[0]
	if m.Digest != manifestDigest || m.Annotations["io.containerd.image.name"] != "localhost/herald:dev" || m.Annotations["org.opencontainers.image.ref.name"] != "dev" {
		t.Errorf("index manifest %+v", m)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	mb := blob(t, data, m.Digest)
	if digest(mb) != m.Digest || len(mb) != m.Size {
		t.Errorf("manifest blob does not match its descriptor")
	}
	if err := json.Unmarshal(mb, &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v %s", err, mb)
	}
	var config struct {
		Config struct {
			Entrypoint []string
			Env        []string
			User       string
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(t, data, manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if c := config.Config; len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/usr/local/bin/herald" || c.User != "65532:65532" ||
		len(c.Env) != 1 || c.Env[0] != "PATH=/usr/local/bin:/usr/bin:/bin" {
		t.Errorf("config %+v", c)
	}
	layer := blob(t, data, manifest.Layers[0].Digest)
	if config.RootFS.DiffIDs[0] != digest(layer) {
		t.Error("the diff id is not the uncompressed layer's digest")
	}

	hdrs, files := untar(t, layer)
	want := map[string]int64{"tmp/": 0o1777, "usr/": 0o755, "usr/local/": 0o755, "usr/local/bin/": 0o755, "etc/": 0o755,
		"usr/local/bin/herald": 0o755, "etc/passwd": 0o644}
	for name, mode := range want {
		h, ok := hdrs[name]
		if !ok {
			t.Errorf("layer lacks %s", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s: mode %o, want %o", name, h.Mode, mode)
		}
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want the epoch", name, h.ModTime)
		}
	}
	if len(hdrs) != len(want) {
		t.Errorf("layer has %d entries, want %d", len(hdrs), len(want))
	}
	if string(files["usr/local/bin/herald"]) != "#!binary" {
		t.Errorf("herald: %q", files["usr/local/bin/herald"])
	}
}

func TestBuildNeedsATag(t *testing.T) {
	if _, _, _, err := build(options{name: "localhost/herald"}); err == nil {
		t.Error("a name without a tag was accepted")
	}
}
