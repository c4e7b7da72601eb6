package devmode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// signingDir is where herald dev writes the signing keys of Subscription
// namespace/name, under its data directory.
func signingDir(dataDir, namespace, name string) string {
	return filepath.Join(dataDir, "signing", namespace, name)
}

// writeSigningKeys writes the keys of s's spec.signing Secret, from the
// manifests, to its directory under dataDir, as the operator mounts them
// in a cluster, and returns the directory. The Secret must hold a valid
// signingKey; previousSigningKey is written when present and removed when
// not. Errors name the Secret and key, never a value.
func writeSigningKeys(valid, declared map[Key]*Object, dataDir string, s *v1alpha1.Subscription) (string, error) {
	name := s.Spec.Signing.SecretName
	keys := map[string][]byte{}
	for _, file := range []string{plan.SigningKeyFile, plan.PreviousSigningKeyFile} {
		if file == plan.PreviousSigningKeyFile {
			// The Secret is valid: signingKey was found in it.
			if _, ok := valid[Key{KindSecret, s.Namespace, name}].Secret.Data[file]; !ok {
				continue
			}
		}
		ref := corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: file}
		v, err := secretKey(valid, declared, s.Namespace, ref)
		if err != nil {
			return "", err
		}
		if _, err := plan.ParseSigningKey(string(v)); err != nil {
			return "", fmt.Errorf("key %q of secret %s/%s: %w", file, s.Namespace, name, err)
		}
		keys[file] = v
	}
	dir := signingDir(dataDir, s.Namespace, s.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("write signing keys: %w", err)
	}
	for _, file := range []string{plan.SigningKeyFile, plan.PreviousSigningKeyFile} {
		path := filepath.Join(dir, file)
		v, ok := keys[file]
		if !ok {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("write signing keys: %w", err)
			}
			continue
		}
		if err := writeFileAtomic(path, v); err != nil {
			return "", fmt.Errorf("write signing keys: %w", err)
		}
	}
	return dir, nil
}

// writeFileAtomic replaces path with data (mode 0600) unless it holds data
// already, so that a reader never sees a partly written file.
func writeFileAtomic(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// pruneSigningKeys removes the key directories under dataDir of every
// Subscription not signed from them in subsOf.
func pruneSigningKeys(dataDir string, subsOf map[string][]compiler.ResolvedSubscription) error {
	keep := map[string]bool{}
	for _, subs := range subsOf {
		for _, rs := range subs {
			if rs.SigningKeyDir != "" {
				keep[rs.SigningKeyDir] = true
			}
		}
	}
	root := filepath.Join(dataDir, "signing")
	namespaces, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune signing keys: %w", err)
	}
	var errs []error
	for _, ns := range namespaces {
		subs, err := os.ReadDir(filepath.Join(root, ns.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, sub := range subs {
			if dir := signingDir(dataDir, ns.Name(), sub.Name()); !keep[dir] {
				errs = append(errs, os.RemoveAll(dir))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune signing keys: %w", err)
	}
	return nil
}
