package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Fields that cannot change safely refuse updates with a message saying to
// recreate the object.
func TestImmutableFields(t *testing.T) {
	for _, tc := range []struct {
		name, create string
		path         []string
		value        any
		wantErr      string
	}{
		{"topic storage", head(topicHead, "immutable-storage") + "spec:\n  storage: file\n",
			[]string{"spec", "storage"}, "memory", "storage cannot change once the Topic exists; delete and recreate the Topic"},
		{"subscription topic", head(subHead, "immutable-topic") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n",
			[]string{"spec", "topic"}, "payments", "topic cannot change once the Subscription exists; delete and recreate the Subscription"},
		{"subscription start position", head(subHead, "immutable-start") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  startPosition: latest\n",
			[]string{"spec", "startPosition"}, "earliest", "startPosition cannot change once the Subscription exists"},
		{"subscription paused is mutable", head(subHead, "mutable-paused") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n",
			[]string{"spec", "paused"}, true, ""},
		{"topic retention is mutable", head(topicHead, "mutable-retention") + "spec:\n  storage: file\n",
			[]string{"spec", "retention"}, map[string]any{"maxAge": "P1D"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			obj := decode(t, tc.create)
			if err := k8s.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
			if err := unstructured.SetNestedField(obj.Object, tc.value, tc.path...); err != nil {
				t.Fatal(err)
			}
			err := k8s.Update(ctx, obj)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("update refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("update accepted, want refused with %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("refused with %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// Defaults the API server fills in, which users see with kubectl get -o yaml.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	topic := decode(t, head(topicHead, "defaults"))
	if err := k8s.Create(ctx, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), topic) })
	spec, _, _ := unstructured.NestedMap(topic.Object, "spec")
	for k, want := range map[string]any{"storage": "file", "replicas": int64(1), "maxEventSize": int64(1048576)} {
		if spec[k] != want {
			t.Errorf("topic spec.%s = %v, want %v", k, spec[k], want)
		}
	}
	sub := decode(t, head(subHead, "defaults")+"spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n")
	if err := k8s.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sub) })
	spec, _, _ = unstructured.NestedMap(sub.Object, "spec")
	for k, want := range map[string]any{"ordering": "unordered", "maxInFlight": int64(64), "startPosition": "latest"} {
		if spec[k] != want {
			t.Errorf("subscription spec.%s = %v, want %v", k, spec[k], want)
		}
	}
}
