package sources

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestInjectSinkEnv(t *testing.T) {
	secretRef := &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}
	pod := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init"}},
		Containers: []corev1.Container{
			{Name: "replace", Env: []corev1.EnvVar{
				{Name: "A", Value: "1"},
				{Name: EnvSink, Value: "http://old"},
				{Name: "B", Value: "$(K_SINK)/x"},
				{Name: EnvSink, Value: "http://duplicate"},
				{Name: EnvCEOverrides, ValueFrom: secretRef},
			}},
			{Name: "empty"},
		},
	}
	InjectSinkEnv(&pod, "http://sink", "", `{"extensions":{"a":"b"}}`)
	sink := corev1.EnvVar{Name: EnvSink, Value: "http://sink"}
	over := corev1.EnvVar{Name: EnvCEOverrides, Value: `{"extensions":{"a":"b"}}`}
	want := map[string][]corev1.EnvVar{
		"init":    {sink, over},
		"replace": {{Name: "A", Value: "1"}, sink, {Name: "B", Value: "$(K_SINK)/x"}, over},
		"empty":   {sink, over},
	}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		if !reflect.DeepEqual(c.Env, want[c.Name]) {
			t.Errorf("%s: env %+v, want %+v", c.Name, c.Env, want[c.Name])
		}
	}

	InjectSinkEnv(&pod, "http://other", "", "")
	if env := pod.Containers[1].Env; len(env) != 2 || env[0].Value != "http://other" || env[1].Value != "{}" {
		t.Errorf("second injection: %+v", env)
	}

	InjectSinkEnv(&pod, "http://other", "aud", "")
	if env := pod.Containers[1].Env; len(env) != 3 || env[2] != (corev1.EnvVar{Name: EnvAudience, Value: "aud"}) {
		t.Errorf("injection with an audience: %+v", env)
	}
}
