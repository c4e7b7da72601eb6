#!/usr/bin/env bash
# Measures every data-path target of the performance issue with
# hack/bench/run.sh and prints one line per target with the measured figure
# and whether it is met. Herald runs over loopback TCP (as a deployed
# dispatcher reaches NATS), once delivering one event per request and once
# in batches of up to 100 (BATCH="0 100").
#
#   end to end       e2e events/s >= 1.3x jetstream-http and >= 1.8x knative-imc
#   long rounds      the same with N=100000 (LONG_N)
#   latency          p99 <= 5 ms at a fixed 5,000 events/s
#   fan-out          10 Subscriptions deliver >= 3x the 1-Subscription rate
#   failures         with 10 % of deliveries failing, ingress >= 0.9x its
#                    failure-free rate, nothing lost
#   stretch          e2e >= 0.5x direct
#
# Every ratio is the median of per-round ratios, the rounds of the two sides
# run back to back. Usage: [ROUNDS=3] [N=20000] [LONG_N=100000]
# hack/bench/targets.sh. Takes about 10 minutes on 2 cores with the defaults;
# run it on an otherwise idle machine. Each run's lines are kept in $OUT
# (default: a temporary directory, printed at the end).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3} N=${N:-20000} LONG_N=${LONG_N:-100000}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
run=("$root/hack/bench/run.sh")

# median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# field prints field $2 of the scenario lines of file $1 whose scenario is $3
# and round $4.
field() { awk -v k="$2" -v s="$3" -v r="$4" '
  { delete m; for (i = 1; i <= NF; i++) { p = index($i, "="); if (p) m[substr($i, 1, p - 1)] = substr($i, p + 1) } }
  m["round"] == r && m["scenario"] == s { print m[k] }' "$1"; }

# ratio prints the median over rounds of field $2 of scenario $3 in file $1
# divided by field $5 of scenario $6 in file $4, times $7 (default 1).
ratio() {
  local r a b
  for r in $(seq 1 "$ROUNDS"); do
    a=$(field "$1" "$2" "$3" "$r"); b=$(field "$4" "$5" "$6" "$r")
    [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" -v f="${7:-1}" 'BEGIN { if (b > 0) printf "%.3f\n", a / b * f }'
  done | median
}

# medianof prints the median over rounds of field $2 of scenario $3 in $1.
medianof() { for r in $(seq 1 "$ROUNDS"); do field "$1" "$2" "$3" "$r"; done | median; }

verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "NOT met" }'; }

echo "# $(date -u +%FT%TZ) nproc=$(nproc) ROUNDS=$ROUNDS N=$N LONG_N=$LONG_N; lines in $OUT" >&2
# Main and long runs: peers and Herald in the same rounds.
for r in $(seq 1 "$ROUNDS"); do
  env N="$N" ROUNDS=1 NATS=tcp BATCH="0 100" "${run[@]}" 2>/dev/null | grep '^scenario=' | sed "s/^/round=$r /" >>"$OUT/main"
  env N="$LONG_N" ROUNDS=1 NATS=tcp BATCH="0 100" "${run[@]}" 2>/dev/null | grep '^scenario=' | sed "s/^/round=$r /" >>"$OUT/long"
  env N="$N" ROUNDS=1 NATS=tcp BATCH="0 100" "${run[@]}" -rate 5000 2>/dev/null | grep '^scenario=' | sed "s/^/round=$r /" >>"$OUT/rate"
  for f in 1 10; do
    env N="$N" ROUNDS=1 NATS=tcp BATCH="0 100" PEERS="" FANOUT=$f "${run[@]}" 2>/dev/null | grep '^scenario=' | sed "s/^/round=$r /" >>"$OUT/fanout"
  done
  for f in 0 0.1; do
    env N="$N" ROUNDS=1 NATS=tcp BATCH="0 100" PEERS="" FAIL=$f "${run[@]}" 2>/dev/null | grep '^scenario=' | sed "s/^/round=$r fail=$f /" | sed "s/scenario=\([^ ]*\)/scenario=\1-fail$f/" >>"$OUT/fail"
  done
done

for b in "" "-batch100"; do
  h=herald-tcp$b-fanout1
  mode="one event per request"
  [ -n "$b" ] && mode="batches of up to 100"
  echo "## Herald over TCP, $mode"
  j=$(ratio "$OUT/main" e2e_eps "$h" "$OUT/main" e2e_eps jetstream-http)
  k=$(ratio "$OUT/main" e2e_eps "$h" "$OUT/main" e2e_eps knative-imc)
  echo "end to end: $(medianof "$OUT/main" e2e_eps "$h") events/s, ${j}x jetstream-http ($(verdict "$j" 1.3 ">=")), ${k}x knative-imc ($(verdict "$k" 1.8 ">="))"
  j=$(ratio "$OUT/long" e2e_eps "$h" "$OUT/long" e2e_eps jetstream-http)
  k=$(ratio "$OUT/long" e2e_eps "$h" "$OUT/long" e2e_eps knative-imc)
  echo "long rounds ($LONG_N events): ${j}x jetstream-http ($(verdict "$j" 1.3 ">=")), ${k}x knative-imc ($(verdict "$k" 1.8 ">="))"
  p=$(medianof "$OUT/rate" p99_ms "$h")
  echo "p99 at 5,000 events/s: $p ms ($(verdict "$p" 5 "<=")); jetstream-http $(medianof "$OUT/rate" p99_ms jetstream-http) ms, knative-imc $(medianof "$OUT/rate" p99_ms knative-imc) ms"
  f=$(ratio "$OUT/fanout" e2e_eps "herald-tcp$b-fanout10" "$OUT/fanout" e2e_eps "$h" 10)
  echo "fan-out to 10: ${f}x the 1-Subscription rate ($(verdict "$f" 3 ">="))"
  i=$(ratio "$OUT/fail" ingress_eps "$h-fail0.1" "$OUT/fail" ingress_eps "$h-fail0")
  lost=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^lost=/) { split($i, kv, "="); s += kv[2] } } END { print s + 0 }' "$OUT/fail")
  echo "10 % failing: ingress ${i}x its failure-free rate ($(verdict "$i" 0.9 ">=")), $lost lost (runs with and without failures)"
  d=$(ratio "$OUT/main" e2e_eps "$h" "$OUT/main" e2e_eps direct)
  echo "stretch: ${d}x direct ($(verdict "$d" 0.5 ">="))"
done
echo "# lines kept in $OUT" >&2
