#!/usr/bin/env bash
# Renders Herald's Grafana dashboard and alerts as text against real
# metrics, on one machine: runs `herald dev` on the config/samples/dev
# manifests with its metrics on (--metrics-listen), sends it a stream of
# events (order.created, which created-only fails to deliver and
# dead-letters, and order.shipped, which shipped-nowhere fails to deliver
# and drops), a few invalid requests and posts to an unknown Topic, and
# meanwhile scrapes its /metrics with hack/dashboard-preview, which then
# evaluates every panel and alert with Prometheus's PromQL engine.
#
# Usage: [DURATION=90s] [RATE=10] [BASE=18080] hack/dashboard-preview/run.sh
#   DURATION  how long events flow and metrics are scraped
#   RATE      events sent per second
#   BASE      first of the local ports used (BASE..BASE+5)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-90s} RATE=${RATE:-10} BASE=${BASE:-18080}
ingress=$((BASE)) display=$((BASE + 1)) nats=$((BASE + 2))
dmetrics=$((BASE + 4)) webhook=$((BASE + 5))

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "# building herald and dashboard-preview" >&2
(cd "$root" && go build -o "$work/herald" ./cmd/herald && go build -o "$work/dashboard-preview" ./hack/dashboard-preview)

# The sample manifests, with the display sink on its port here, and two
# Subscriptions more: one whose subscriber is not running and that has no
# dead-letter sink (its events are dropped), and a paused one (its lag
# grows).
mkdir -p "$work/manifests"
for f in "$root"/config/samples/dev/*.yaml; do
  sed "s#127.0.0.1:8081#127.0.0.1:$display#g" "$f" >"$work/manifests/$(basename "$f")"
done
cat >"$work/manifests/preview.yaml" <<'EOF'
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: shipped-nowhere
spec:
  topic: orders
  filters:
  - exact:
      type: com.example.order.shipped
  subscriber:
    uri: http://127.0.0.1:9/shipped
  delivery:
    retry: 1
    backoffDelay: PT0.2S
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: held
spec:
  topic: orders
  paused: true
  subscriber:
    uri: http://127.0.0.1:9/held
EOF

"$work/herald" dev -f "$work/manifests" --data-dir "$work/data" \
  --listen "127.0.0.1:$ingress" --display-listen "127.0.0.1:$display" \
  --nats-listen "127.0.0.1:$nats" --webhook-listen "127.0.0.1:$webhook" \
  --metrics-listen "127.0.0.1:$dmetrics" \
  >"$work/dev.out" 2>"$work/dev.err" &
pids+=($!)

wait_for() { # URL [STATUS]: until it answers (with STATUS), at most 30 s
  for _ in $(seq 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null || true)
    if [ "$code" != 000 ] && [ -z "${2:-}" -o "$code" = "${2:-}" ]; then return 0; fi
    sleep 0.2
  done
  echo "no answer from $1" >&2
  return 1
}
# herald dev serves once its ingress answers at all (404 for no Topic).
wait_for "http://127.0.0.1:$ingress/" || { cat "$work/dev.err" >&2; exit 1; }

wait_for "http://127.0.0.1:$dmetrics/metrics" 200 || { cat "$work/dev.err" >&2; exit 1; }

to="http://127.0.0.1:$ingress/default/orders"
(
  i=0
  while :; do
    i=$((i + 1))
    type=com.example.order.shipped
    [ $((i % 3)) = 0 ] && type=com.example.order.created
    "$work/herald" send --to "$to" --type "$type" --source /preview --data "{\"id\":$i}" >/dev/null 2>&1 || true
    # Every 20th request is refused: no ce-id (400), or an unknown Topic (404).
    if [ $((i % 20)) = 0 ]; then
      curl -s -o /dev/null -X POST "$to" -H 'ce-specversion: 1.0' -H 'ce-type: t' -H 'ce-source: /preview' || true
      curl -s -o /dev/null -X POST "http://127.0.0.1:$ingress/default/nope" -H 'ce-specversion: 1.0' || true
    fi
    sleep "$(awk "BEGIN{print 1/$RATE}")"
  done
) &
pids+=($!)

"$work/dashboard-preview" -for "$DURATION" -every 5s \
  -dashboard "$root/charts/herald/files/herald-dashboard.json" \
  -alerts "$root/charts/herald/files/herald-alerts.yaml" \
  -target "job=herald-dispatcher,namespace=default,pod=herald-dispatcher-local,container=dispatcher,endpoint=metrics,url=http://127.0.0.1:$dmetrics/metrics"
