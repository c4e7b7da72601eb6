// Command mkoci writes a single-layer OCI image archive (oci-layout,
// index.json, blobs) from local files, for `ctr images import`. It needs no
// container engine and no registry: the local cluster (hack/cluster) builds
// Herald's, NATS's and its own helper images with it from static binaries.
//
//	mkoci -name localhost/herald:dev -o herald.tar \
//	    -entrypoint /usr/local/bin/herald -env PATH=/usr/local/bin:/usr/bin:/bin \
//	    bin/herald:/usr/local/bin/herald
//
// Each argument is SRC:DST (a file copied to DST in the image, keeping its
// permission bits) or SRC alone (copied to /<base name>). -dir adds an empty
// directory. The archive is reproducible: every timestamp is the epoch, and
// files are written in argument order.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

var epoch = time.Unix(0, 0).UTC()

// options describe the image.
type options struct {
	name, entrypoint, cmd, user, workdir string
	env, dirs                            []string
	// files are SRC:DST or SRC arguments.
	files []string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkoci: ")
	var o options
	flag.StringVar(&o.name, "name", "", "image reference, e.g. localhost/herald:dev (required)")
	out := flag.String("o", "image.tar", "output archive")
	flag.StringVar(&o.entrypoint, "entrypoint", "", "entrypoint, space separated")
	flag.StringVar(&o.cmd, "cmd", "", "default arguments (Cmd), space separated")
	flag.StringVar(&o.user, "user", "", "user[:group] the image runs as by default")
	flag.StringVar(&o.workdir, "workdir", "/", "working directory")
	var env, dirs listFlag
	flag.Var(&env, "env", "KEY=VALUE environment variable (repeatable)")
	flag.Var(&dirs, "dir", "empty directory PATH or PATH:MODE (octal), e.g. /tmp:1777 (repeatable)")
	flag.Parse()
	o.env, o.dirs, o.files = env, dirs, flag.Args()

	archive, manifest, layerSize, err := build(o)
	if err != nil {
		log.Fatal(err)
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s (%d MiB)\n", o.name, manifest, layerSize>>20)
}

// build returns the image archive, its manifest's digest and the size of
// its layer.
func build(o options) (archive []byte, manifestDigest string, layerSize int, err error) {
	if o.name == "" || !strings.Contains(o.name, ":") {
		return nil, "", 0, fmt.Errorf("-name must be a reference with a tag, e.g. localhost/herald:dev")
	}
	layer, err := buildLayer(o.files, o.dirs)
	if err != nil {
		return nil, "", 0, err
	}
	arch := runtime.GOARCH
	config := map[string]any{"Env": o.env, "WorkingDir": o.workdir}
	if o.entrypoint != "" {
		config["Entrypoint"] = strings.Fields(o.entrypoint)
	}
	if o.cmd != "" {
		config["Cmd"] = strings.Fields(o.cmd)
	}
	if o.user != "" {
		config["User"] = o.user
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux", "created": epoch.Format(time.RFC3339),
		"config": config,
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(cfg), Size: len(cfg)},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest(layer), Size: len(layer)}},
	})
	tag := o.name[strings.LastIndex(o.name, ":")+1:]
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest(manifest), Size: len(manifest),
			Platform:    map[string]string{"architecture": arch, "os": "linux"},
			Annotations: map[string]string{"io.containerd.image.name": o.name, "org.opencontainers.image.ref.name": tag},
		}},
	})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, "", 0, err
		}
	}
	type file struct {
		name string
		data []byte
	}
	files := []file{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", index}}
	for _, b := range [][]byte{layer, cfg, manifest} {
		files = append(files, file{"blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:"), b})
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return nil, "", 0, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, "", 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", 0, err
	}
	return buf.Bytes(), digest(manifest), len(layer), nil
}

// buildLayer returns an uncompressed tar of the files and directories.
func buildLayer(files []string, dirs []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	mkdir := func(d string, mode int64) error {
		if d == "/" || d == "." || seen[d] {
			return nil
		}
		seen[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode, ModTime: epoch})
	}
	parents := func(p string) error {
		var chain []string
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, d := range chain {
			if err := mkdir(d, 0o755); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range dirs {
		p, mode := d, int64(0o755)
		if i := strings.LastIndex(d, ":"); i >= 0 {
			m, err := strconv.ParseInt(d[i+1:], 8, 64)
			if err != nil {
				return nil, fmt.Errorf("-dir %s: bad mode: %v", d, err)
			}
			p, mode = d[:i], m
		}
		p = path.Clean("/" + p)
		if err := parents(p); err != nil {
			return nil, err
		}
		if err := mkdir(p, mode); err != nil {
			return nil, err
		}
	}
	for _, a := range files {
		src, dst := a, "/"+path.Base(a)
		if i := strings.Index(a, ":"); i >= 0 {
			src, dst = a[:i], a[i+1:]
		}
		dst = path.Clean("/" + dst)
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		mode := int64(0o644)
		if st.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := parents(dst); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
