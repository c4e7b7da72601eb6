#!/usr/bin/env bash
# Measures Herald end to end beside its peers in one run, on loopback.
#
# Each round runs the peers' scenarios of the shared benchmark harness
# (direct HTTP, a minimal hand-written HTTP -> JetStream -> HTTP path, and
# Knative's in-memory channel) and then Herald: `herald dev` with one Topic
# and FANOUT Subscriptions, driven by the harness's `url` scenario, which
# sends 1 KiB CloudEvents with C connections and counts at its own sink. With
# FANOUT > 1, one Subscription delivers to the measuring sink and the others
# to a second sink, so the figures are those one subscriber sees while Herald
# fans out. Prints every result line, then the medians of each scenario's
# figures and of its per-round ratios to `direct` and to the peers. Absolute
# rates vary between machines: compare within a run.
#
# Usage: [N=20000] [C=32] [S=1024] [ROUNDS=3] [FANOUT=1] [FAIL=0] [BATCH=0]
#        [PEERS="direct jetstream-http knative-imc"] [PEERS_BENCH=dir]
#        [NATS="inprocess tcp"] [AUTH=0] [VARIANTS=plain] [TRACE_RATIO=0.1]
#        hack/bench/run.sh [extra flags for every scenario, e.g. -rate 5000]
#
# NATS lists how Herald's dispatcher reaches the embedded NATS server, one
# Herald run per entry and round: inprocess (herald dev's default, labelled
# herald-fanoutN) or tcp (loopback TCP, as a deployed dispatcher and the
# jetstream-http peer connect; --nats-in-process=false, labelled
# herald-tcp-fanoutN).
#
# AUTH=1 adds, per round, Herald's ingress alone measured by
# hack/bench/ingressload (a Topic without Subscriptions, 202s per second):
# herald-ingress with producer authentication off, herald-ingress-auth with
# herald dev --auth and every request carrying the same token; the summary
# prints their medians and the median per-round ratio auth/off.
#
# VARIANTS lists Herald configurations, one Herald run per entry, NATS mode
# and batch size in each round (alternating their order between rounds):
# plain; traced (herald dev --otel sampling TRACE_RATIO of the traces with
# parentbased_traceidratio and exporting them over OTLP/HTTP to a local
# collector, hack/bench/otlpsink, that accepts and discards them; label
# -traced); history (the Topic keeps delivery history; label -history).
# The summary prints the median per-round ratio of each variant's e2e rate
# to plain's.
#
# BATCH lists batch sizes, one Herald run per entry and NATS mode in each
# round (e.g. BATCH="0 100"): 0 delivers one event per request; N > 0 gives
# Herald's Subscriptions `batch: {maxEvents: N}` (and `maxWait: BATCH_WAIT`
# when set), delivering in CloudEvents batch mode, which the harness's sink
# reads (the label gets -batchN). MAXINFLIGHT sets their maxInFlight (64).
#
# PEERS_BENCH is the harness's source directory (default: ../shared/bench
# beside the repository). FAIL makes the sinks answer that fraction of
# requests with 500, for Herald and the peers alike.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS_BENCH=${PEERS_BENCH:-$root/../shared/bench}
N=${N:-20000} C=${C:-32} S=${S:-1024} ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-2000}
FANOUT=${FANOUT:-1} FAIL=${FAIL:-0} BATCH=${BATCH:-0} BATCH_WAIT=${BATCH_WAIT:-}
PEERS=${PEERS-"direct jetstream-http knative-imc"}
NATS=${NATS:-"inprocess tcp"}
AUTH=${AUTH:-0}
VARIANTS=${VARIANTS:-plain} TRACE_RATIO=${TRACE_RATIO:-0.1}

mkdir -p "$root/bin"
bench="$root/bin/bench-peers"
herald="$root/bin/herald"
echo "# building the harness from $PEERS_BENCH and herald" >&2
(cd "$PEERS_BENCH" && go build -ldflags="-s -w" -o "$bench" .)
(cd "$root" && go build -ldflags="-s -w" -o "$herald" ./cmd/herald)
ingressload="$root/bin/ingressload"
otlpsink="$root/bin/otlpsink"
case " $VARIANTS " in *" traced "*)
  (cd "$root" && go build -ldflags="-s -w" -o "$otlpsink" ./hack/bench/otlpsink) ;;
esac
if [ "$AUTH" = 1 ]; then
  (cd "$root" && go build -ldflags="-s -w" -o "$ingressload" ./hack/bench/ingressload)
fi

work=$(mktemp -d)
results="$work/results"
herald_pid=""
sink_pid=""
collector_pid=""
cleanup() {
  [ -n "$herald_pid" ] && kill "$herald_pid" 2>/dev/null && wait "$herald_pid" 2>/dev/null
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# manifests writes a Topic and FANOUT Subscriptions, batch size $4, into $1;
# the Topic keeps delivery history when $5 is history.
manifests() {
  local dir=$1 sink=$2 other=$3 size=$4 variant=${5:-plain} batch="" history=""
  mkdir -p "$dir"
  if [ "$size" -gt 0 ]; then batch="
  batch:
    maxEvents: $size"; fi
  if [ -n "$BATCH_WAIT" ]; then batch="$batch
    maxWait: $BATCH_WAIT"; fi
  if [ "$variant" = history ]; then history="
  history:
    enabled: true"; fi
  cat >"$dir/bench.yaml" <<YAML
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: bench
spec:
  duplicateWindow: PT2M$history
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: measured
spec:
  topic: bench
  subscriber:
    uri: http://$sink/
  maxInFlight: ${MAXINFLIGHT:-64}$batch
  delivery:
    retry: 10
    backoffDelay: PT0.05S
    backoffMax: PT1S
YAML
  for i in $(seq 2 "$FANOUT"); do
    cat >>"$dir/bench.yaml" <<YAML
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: fanout-$i
spec:
  topic: bench
  subscriber:
    uri: http://$other/
  maxInFlight: ${MAXINFLIGHT:-64}$batch
  delivery:
    retry: 10
    backoffDelay: PT0.05S
    backoffMax: PT1S
YAML
  done
}

# run_herald runs Herald for round $1, NATS mode $2, batch size $3 and
# variant $4 (plain, traced or history).
run_herald() {
  local listen sink other dir label=herald inproc=true variant=${4:-plain}
  local otel=() env=()
  if [ "$2" = tcp ]; then label=herald-tcp inproc=false; fi
  if [ "$3" -gt 0 ]; then label=$label-batch$3; fi
  if [ "$variant" != plain ]; then label=$label-$variant; fi
  listen=127.0.0.1:$(free_port)
  sink=127.0.0.1:$(free_port)
  other=127.0.0.1:$(free_port)
  dir="$work/round-$1-$2-batch$3-$variant"
  manifests "$dir/manifests" "$sink" "$other" "$3" "$variant"
  if [ "$FANOUT" -gt 1 ]; then
    "$bench" sink -sink-addr "$other" -fail "$FAIL" >"$dir/other-sink.log" 2>&1 &
    sink_pid=$!
  fi
  if [ "$variant" = traced ]; then
    local collector=127.0.0.1:$(free_port)
    "$otlpsink" -listen "$collector" >"$dir/collector.log" 2>&1 &
    collector_pid=$!
    otel=(--otel)
    env=(OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
      OTEL_EXPORTER_OTLP_ENDPOINT="http://$collector"
      OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG="$TRACE_RATIO")
  fi
  env "${env[@]}" "$herald" dev -f "$dir/manifests" --data-dir "$dir/data" --listen "$listen" \
    --nats-listen random --display-listen "" --webhook-listen "" "${otel[@]}" \
    --nats-in-process="$inproc" ${PPROF_LISTEN:+--pprof-listen "$PPROF_LISTEN"} >"$dir/herald.log" 2>&1 &
  herald_pid=$!
  for _ in $(seq 1 100); do
    # 400 (not a CloudEvent) means the Topic is served.
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$listen/default/bench" || true)" = 400 ] && break
    sleep 0.1
  done
  "$bench" url -target "http://$listen/default/bench" -sink-addr "$sink" -fail "$FAIL" \
    -pids "$herald_pid" -label "$label-fanout$FANOUT" -n "$N" -c "$C" -size "$S" -warmup "$WARMUP" "${extra[@]}"
  kill "$herald_pid"; wait "$herald_pid" 2>/dev/null || true; herald_pid=""
  if [ -n "$sink_pid" ]; then kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""; fi
  if [ -n "$collector_pid" ]; then kill "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""; fi
}

# run_ingress measures Herald's ingress alone with ingressload, producer
# authentication off or on ($2).
run_ingress() {
  local listen dir label=herald-ingress
  local flags=() token=()
  listen=127.0.0.1:$(free_port)
  dir="$work/ingress-$1-$2"
  mkdir -p "$dir/manifests"
  cat >"$dir/manifests/bench.yaml" <<YAML
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: bench
spec:
  duplicateWindow: PT2M
YAML
  if [ "$2" = on ]; then
    label=herald-ingress-auth
    flags=(--auth)
    "$herald" dev token default/producer --topic default/bench --data-dir "$dir/data" >"$dir/token"
    token=(-token-file "$dir/token")
  fi
  "$herald" dev -f "$dir/manifests" --data-dir "$dir/data" --listen "$listen" \
    --nats-listen random --display-listen "" --webhook-listen "" "${flags[@]}" >"$dir/herald.log" 2>&1 &
  herald_pid=$!
  for _ in $(seq 1 100); do
    # 400 (not a CloudEvent) or 401 (no token) means the Topic is served.
    case "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$listen/default/bench" || true)" in 400|401) break ;; esac
    sleep 0.1
  done
  "$ingressload" -target "http://$listen/default/bench" -label "$label" -n "$N" -c "$C" -size "$S" -warmup "$WARMUP" "${token[@]}"
  kill "$herald_pid"; wait "$herald_pid" 2>/dev/null || true; herald_pid=""
}
extra=("$@")
echo "# start: $(uptime)"
echo "# nproc=$(nproc) N=$N C=$C S=$S WARMUP=$WARMUP ROUNDS=$ROUNDS FANOUT=$FANOUT FAIL=$FAIL NATS=\"$NATS\" BATCH=\"$BATCH\" VARIANTS=\"$VARIANTS\" TRACE_RATIO=$TRACE_RATIO"
for r in $(seq 1 "$ROUNDS"); do
  for s in $PEERS; do
    line=$("$bench" "$s" -n "$N" -c "$C" -size "$S" -warmup "$WARMUP" -fail "$FAIL" "${extra[@]}")
    echo "$line"; echo "round=$r $line" >>"$results"
  done
  # Alternate the variants' order, so that none always runs first.
  variants=$VARIANTS
  [ $((r % 2)) = 0 ] && variants=$(echo "$VARIANTS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for mode in $NATS; do
    for size in $BATCH; do
      for variant in $variants; do
        line=$(run_herald "$r" "$mode" "$size" "$variant" | grep '^scenario=')
        echo "$line"; echo "round=$r $line" >>"$results"
      done
    done
  done
  if [ "$AUTH" = 1 ]; then
    # Alternate the order, so that neither side always runs first.
    modes="off on"; [ $((r % 2)) = 0 ] && modes="on off"
    for mode in $modes; do
      line=$(run_ingress "$r" "$mode" | grep '^scenario=')
      echo "$line"; echo "round=$r $line" >>"$results"
    done
  fi
done
echo "# end: $(uptime)"

awk '
function kv(line, arr,   i, n, f, p) {
  n = split(line, f, " ")
  for (i = 1; i <= n; i++) { p = index(f[i], "="); if (p) arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1) }
}
function median(list,   a, n, i, j, t) {
  n = split(list, a, " ")
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
  delete m; kv($0, m); r = m["round"]; s = m["scenario"]
  if (!(s in seen)) { seen[s] = 1; order[++ns] = s }
  for (k in m) v[r, s, k] = m[k]
  rounds[r] = 1
}
END {
  for (i = 1; i <= ns; i++) {
    s = order[i]; I = ""; E = ""; P5 = ""; P9 = ""; RI = ""; RE = ""; CPU = ""; RJ = ""; RK = ""; seenE2E = 0
    for (r in rounds) {
      if (!((r, s, "e2e_eps") in v)) continue
      seenE2E = 1
      I = I " " v[r, s, "ingress_eps"]; E = E " " v[r, s, "e2e_eps"]; P5 = P5 " " v[r, s, "p50_ms"]; P9 = P9 " " v[r, s, "p99_ms"]; CPU = CPU " " v[r, s, "cpu_us_per_ev"]
      if (((r, "direct", "e2e_eps") in v) && v[r, "direct", "e2e_eps"] > 0) {
        RI = RI " " v[r, s, "ingress_eps"] / v[r, "direct", "ingress_eps"]; RE = RE " " v[r, s, "e2e_eps"] / v[r, "direct", "e2e_eps"]
      }
      if (((r, "jetstream-http", "e2e_eps") in v) && v[r, "jetstream-http", "e2e_eps"] > 0) RJ = RJ " " v[r, s, "e2e_eps"] / v[r, "jetstream-http", "e2e_eps"]
      if (((r, "knative-imc", "e2e_eps") in v) && v[r, "knative-imc", "e2e_eps"] > 0) RK = RK " " v[r, s, "e2e_eps"] / v[r, "knative-imc", "e2e_eps"]
    }
    if (!seenE2E) continue
    printf "median scenario=%s ingress_eps=%.0f e2e_eps=%.0f p50_ms=%.3f p99_ms=%.3f cpu_us_per_ev=%.1f", s, median(I), median(E), median(P5), median(P9), median(CPU)
    if (RE != "") printf " ingress_vs_direct=%.3f e2e_vs_direct=%.3f", median(RI), median(RE)
    if (RJ != "") printf " e2e_vs_jetstream_http=%.2f", median(RJ)
    if (RK != "") printf " e2e_vs_knative_imc=%.2f", median(RK)
    print ""
  }
}' "$results"
if [ "$AUTH" = 1 ]; then
  awk '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    r = ""; s = ""; e = ""
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "round") r = kv[2]; else if (kv[1] == "scenario") s = kv[2]; else if (kv[1] == "ingress_eps") e = kv[2]
    }
    if (s == "herald-ingress") off[r] = e
    if (s == "herald-ingress-auth") on[r] = e
  }
  END {
    for (r in on) if ((r in off) && off[r] > 0) { O = O " " off[r]; A = A " " on[r]; R = R " " on[r] / off[r] }
    if (R != "") printf "median ingress off_eps=%.0f auth_eps=%.0f auth_vs_off=%.3f\n", median(O), median(A), median(R)
  }' "$results"
fi
if [ "$VARIANTS" != plain ]; then
  # Each variant's e2e rate against plain Herald's in the same round, NATS
  # mode and batch size.
  awk '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    r = ""; s = ""; e = ""
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "round") r = kv[2]; else if (kv[1] == "scenario") s = kv[2]; else if (kv[1] == "e2e_eps") e = kv[2]
    }
    if (s !~ /^herald/) next
    v = "plain"
    if (s ~ /-traced-/) v = "traced"; else if (s ~ /-history-/) v = "history"
    base = s; sub("-" v "-", "-", base)
    eps[r, s] = e; variant[s] = v; baseof[s] = base; rounds[r] = 1
  }
  END {
    for (s in variant) {
      if (variant[s] == "plain") continue
      R = ""
      for (r in rounds) if (((r, s) in eps) && ((r, baseof[s]) in eps) && eps[r, baseof[s]] > 0) R = R " " eps[r, s] / eps[r, baseof[s]]
      if (R != "") printf "median variant scenario=%s vs=%s e2e_ratio=%.3f\n", s, baseof[s], median(R)
    }
  }' "$results"
fi
