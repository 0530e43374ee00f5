#!/usr/bin/env bash
# Runs one ratatosk-bench scenario against ratatosk and against Mosquitto, in alternation, and prints
# a table of received msg/s and latency p50 / p99 / p99.9 (medians over the rounds) with the ratio.
#
# Both brokers run on one core (BROKER_CPU) and the load on another (LOAD_CPU), so neither steals
# cycles from the other. Brokers listen on free loopback ports only.
#
# Usage: scripts/bench-vs.sh [extra ratatosk-bench pubsub flags...]
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10]  QOS [0]  SIZE [16]  PAIRS [10]  TOPIC [bench/%i]
#   RATE []     total target msg/s (coordinated-omission aware); empty = as fast as flow control allows
#   INFLIGHT [64]  BROKER_CPU [0]  LOAD_CPU [1]  OUT [target/bench-vs]  MOSQUITTO [/usr/sbin/mosquitto]
# Per-round .hgrm files and logs go to $OUT; the last rounds' histograms are compared at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
QOS=${QOS:-0}
SIZE=${SIZE:-16}
PAIRS=${PAIRS:-10}
TOPIC=${TOPIC:-bench/%i}
RATE=${RATE:-}
INFLIGHT=${INFLIGHT:-64}
BROKER_CPU=${BROKER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-target/bench-vs}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
RATATOSK=target/release/ratatosk
BENCH=target/release/ratatosk-bench

if [[ ! -x $RATATOSK || ! -x $BENCH ]]; then
    echo "building release binaries..." >&2
    cargo build --release -p ratatosk -p ratatosk-bench >&2
fi
if [[ ! -x $MOSQUITTO ]]; then
    echo "bench-vs: $MOSQUITTO not found; install the Debian package mosquitto or set MOSQUITTO=" >&2
    exit 2
fi
mkdir -p "$OUT"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_listening() { # port pid
    for _ in $(seq 1 100); do
        if ! kill -0 "$2" 2>/dev/null; then return 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

BROKER_PID=
stop_broker() {
    if [[ -n $BROKER_PID ]]; then
        kill "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=
    fi
}
trap stop_broker EXIT

start_broker() { # name port
    case $1 in
    ratatosk)
        taskset -c "$BROKER_CPU" "$RATATOSK" --listen "127.0.0.1:$2" --shards 1 >"$OUT/ratatosk.log" 2>&1 &
        ;;
    mosquitto)
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$2" >"$OUT/mosquitto.conf"
        taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
        ;;
    esac
    BROKER_PID=$!
    if ! wait_listening "$2" "$BROKER_PID"; then
        echo "bench-vs: $1 did not start listening on 127.0.0.1:$2; see $OUT/$1.log" >&2
        exit 1
    fi
}

EXTRA=("$@")
rate_args=()
[[ -n $RATE ]] && rate_args=(--rate "$RATE")

run_round() { # name round -> prints "rate p50 p99 p999"
    local name=$1 round=$2 port out
    trap stop_broker EXIT
    port=$(free_port)
    start_broker "$name" "$port"
    out="$OUT/$name-$round.txt"
    # A non-zero exit (loss at QoS >= 1, a failed connection) is reported, not fatal to the table.
    taskset -c "$LOAD_CPU" "$BENCH" pubsub -h 127.0.0.1 -p "$port" -c "$PAIRS" -t "$TOPIC" -q "$QOS" \
        -s "$SIZE" -I 0 -F "$INFLIGHT" -i 1 --duration "$DURATION" --cores 1 --quiet \
        --hgrm "$OUT/$name-$round.hgrm" "${rate_args[@]}" "${EXTRA[@]}" >"$out" 2>&1 || echo "  ($name round $round: exit $?; see $out)" >&2
    stop_broker
    local rate p50 p99 p999
    rate=$(grep -o 'recv_rate=[0-9.]*' "$out" | cut -d= -f2 || true)
    p50=$(grep -o ' p50=[0-9.]*' "$out" | tail -1 | cut -d= -f2 || true)
    p99=$(grep -o ' p99=[0-9.]*' "$out" | tail -1 | cut -d= -f2 || true)
    p999=$(grep -o ' p99\.9=[0-9.]*' "$out" | tail -1 | cut -d= -f2 || true)
    echo "${rate:-0} ${p50:-0} ${p99:-0} ${p999:-0}"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A results
echo "scenario: pubsub, $PAIRS pairs, topic $TOPIC, QoS $QOS, ${SIZE} B, ${DURATION}s, rate ${RATE:-max}, $ROUNDS rounds" \
     "(broker on cpu $BROKER_CPU, load on cpu $LOAD_CPU)"
for round in $(seq 1 "$ROUNDS"); do
    for name in ratatosk mosquitto; do
        line=$(run_round "$name" "$round")
        echo "  round $round $name: recv/s p50 p99 p99.9 (us) = $line"
        results[$name]+="$line"$'\n'
    done
done

col() { # name column
    printf '%s' "${results[$1]}" | awk -v c="$2" 'NF {print $c}' | median
}
printf '\n%-10s %14s %12s %12s %12s\n' broker "msg/s" "p50 us" "p99 us" "p99.9 us"
for name in ratatosk mosquitto; do
    printf '%-10s %14.0f %12.1f %12.1f %12.1f\n' "$name" "$(col "$name" 1)" "$(col "$name" 2)" "$(col "$name" 3)" "$(col "$name" 4)"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '%-10s %14s %12s %12s %12s\n' "ratio r/m" \
    "$(ratio "$(col ratatosk 1)" "$(col mosquitto 1)")" "$(ratio "$(col ratatosk 2)" "$(col mosquitto 2)")" \
    "$(ratio "$(col ratatosk 3)" "$(col mosquitto 3)")" "$(ratio "$(col ratatosk 4)" "$(col mosquitto 4)")"
echo "(medians over $ROUNDS rounds; msg/s is what subscribers received per second of publishing)"

if [[ -s $OUT/ratatosk-$ROUNDS.hgrm && -s $OUT/mosquitto-$ROUNDS.hgrm ]]; then
    echo
    "$BENCH" compare "$OUT/ratatosk-$ROUNDS.hgrm" "$OUT/mosquitto-$ROUNDS.hgrm" --svg "$OUT/p99-compare.svg"
    echo "plot: $OUT/p99-compare.svg"
fi
