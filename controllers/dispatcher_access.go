package controllers

import (
	"context"
	"fmt"
	"maps"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// reconcileDispatcherAccess applies what a Topic's dispatcher needs besides
// its workload: the copy of the dispatchers' NATS files in the Topic's
// namespace (resources.NATS.Copied) and the dispatcher's NetworkPolicy.
func (r *TopicReconciler) reconcileDispatcherAccess(ctx context.Context, t *v1alpha1.Topic) error {
	if r.Config.Dispatcher.NATS.Copied {
		data, err := dispatcherNATSFiles(ctx, r.APIReader, r.Config)
		if err != nil {
			return err
		}
		if err := apply(ctx, r.Client, resources.DispatcherNATSSecret(t, data), nil); err != nil {
			return err
		}
	}
	if np := r.Config.Dispatcher.NetworkPolicy; np.Enabled {
		if err := r.applied.apply(ctx, r.Client, resources.DispatcherNetworkPolicy(t, np), nil); err != nil {
			return err
		}
	}
	return nil
}

// dispatcherNATSFiles reads the source of the dispatchers' NATS files
// (Config.DispatcherNATSSource) straight from the API server: the manager
// may get that one Secret, and caches no Secrets. Without a ca.crt of its
// own the source is completed with the CA bundle the manager trusts
// (Config.DispatcherNATSCAFile), so that a CA kept elsewhere (cert-manager's
// Secret) reaches the dispatchers too.
func dispatcherNATSFiles(ctx context.Context, reader client.Reader, cfg Config) (map[string][]byte, error) {
	src := cfg.DispatcherNATSSource
	var s corev1.Secret
	if err := reader.Get(ctx, src, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Waiting{Reason: v1alpha1.ReasonProgressing, RequeueAfter: 10 * time.Second,
				Err: fmt.Errorf("the dispatchers' NATS Secret %s does not exist", src)}
		}
		return nil, fmt.Errorf("read the dispatchers' NATS Secret %s: %w", src, err)
	}
	data := maps.Clone(s.Data)
	if data == nil {
		data = map[string][]byte{}
	}
	if _, ok := data[resources.NATSSecretKeyTLSCA]; !ok && cfg.DispatcherNATSCAFile != "" {
		ca, err := os.ReadFile(cfg.DispatcherNATSCAFile)
		if err != nil {
			return nil, fmt.Errorf("read the NATS CA bundle: %w", err)
		}
		data[resources.NATSSecretKeyTLSCA] = ca
	}
	return data, nil
}
