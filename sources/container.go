package sources

import corev1 "k8s.io/api/core/v1"

// InjectSinkEnv sets K_SINK to sink, K_AUDIENCE to audience (unless
// empty) and K_CE_OVERRIDES to overridesJSON in every container and init
// container of podSpec, replacing any value the template gives them (in
// place, so later $(K_SINK) references keep working) and dropping
// duplicates; missing variables are appended. An empty overridesJSON is
// set as {}. K_AUDIENCE is the audience of the token the sink expects: the
// container obtains it itself, usually from a projected
// serviceAccountToken volume with that audience, and sends it as
// Authorization: Bearer.
func InjectSinkEnv(podSpec *corev1.PodSpec, sink, audience, overridesJSON string) {
	if overridesJSON == "" {
		overridesJSON = "{}"
	}
	vars := []corev1.EnvVar{{Name: EnvSink, Value: sink}, {Name: EnvCEOverrides, Value: overridesJSON}}
	if audience != "" {
		vars = append(vars, corev1.EnvVar{Name: EnvAudience, Value: audience})
	}
	for i := range podSpec.InitContainers {
		podSpec.InitContainers[i].Env = setEnv(podSpec.InitContainers[i].Env, vars)
	}
	for i := range podSpec.Containers {
		podSpec.Containers[i].Env = setEnv(podSpec.Containers[i].Env, vars)
	}
}

// setEnv returns env with each of vars set: the first variable of the same
// name is replaced in place, later ones dropped, missing ones appended.
func setEnv(env []corev1.EnvVar, vars []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env)+len(vars))
	done := make(map[string]bool, len(vars))
	for _, e := range env {
		v, ok := lookupEnv(vars, e.Name)
		if !ok {
			out = append(out, e)
			continue
		}
		if !done[e.Name] {
			out = append(out, v)
			done[e.Name] = true
		}
	}
	for _, v := range vars {
		if !done[v.Name] {
			out = append(out, v)
		}
	}
	return out
}

func lookupEnv(vars []corev1.EnvVar, name string) (corev1.EnvVar, bool) {
	for _, v := range vars {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.EnvVar{}, false
}
