#!/usr/bin/env bash
# Runs one ratatosk-bench scenario against each broker in BROKERS, in alternation, and prints a table
# of received msg/s, latency p50 / p99 / p99.9 (medians over the rounds) and messages lost per broker,
# and the ratio of the first broker (ratatosk by default) to each other one.
#
# Brokers (BROKERS, default "ratatosk mosquitto floor", plus rumqttd when its binary is found):
#   ratatosk   this repository's broker, one shard (--shards 1)
#   mosquitto  Mosquitto, anonymous, one listener
#   rumqttd    rumqttd 0.20 (`cargo install rumqttd`), its demo config's router settings and one
#              listener (v5, or v4 when MQTT_VERSION is 3 or 4); no console, metrics or prometheus;
#              payload limit and accept rate raised so that no SIZE or CONNRATE cuts off the clients
#   floor      `ratatosk-bench relay`: a single-threaded epoll loop that relays PUBLISH bytes unchanged
#              to matching subscribers and acknowledges QoS 1/2 itself; no broker does less per message,
#              so it is the floor of latency and CPU for copying these bytes between these sockets
# Every broker runs on one core (BROKER_CPU) and the load on another (LOAD_CPU), so neither steals
# cycles from the other. Brokers listen on free loopback ports only and are stopped on exit.
#
# Usage: SCENARIO=name [VAR=value...] scripts/bench-vs.sh [extra ratatosk-bench pubsub flags...]
#
# Scenarios (SCENARIO, default pairs); N and M below are the N and M variables:
#   pairs    N publishers, N subscribers, publisher i -> subscriber i (topic bench/i)
#   fanin    N publishers (bench/i) -> one subscriber of the wildcard bench/#
#   fanout   one publisher (bench/fanout) -> N subscribers of that topic
#   shared   N publishers (bench/i) -> M subscribers in one shared group, $share/g/bench/#
#            (the floor refuses shared subscriptions: leave it out of BROKERS)
#   idle     CONNS idle connections (`ratatosk-bench conn`); reports broker RSS growth per connection
#            (VmRSS from /proc/PID/status before and after)
# Message scenarios run once for every QoS in QOS and every payload size in SIZE (both may be
# space-separated lists, e.g. QOS="0 1" SIZE="16 1024").
#
# Environment (defaults in brackets):
#   BROKERS [ratatosk mosquitto floor, + rumqttd if found]  which brokers, in this order; the first is
#                     the numerator of the ratios
#   RATATOSK_ARGS []  extra ratatosk flags, e.g. "--config tuned.toml"
#   RATATOSK [target/release/ratatosk]  BENCH [target/release/ratatosk-bench]  binaries to run (e.g. a
#                     build of an earlier commit, to compare before and after in one run); BENCH also
#                     runs the floor
#   SCENARIO [pairs]  ROUNDS [3]  DURATION [5]  QOS [0]  SIZE [16]  N [10]  M [5]
#   MQTT_VERSION [5]  protocol version of the load (ratatosk-bench -V: 3, 4 or 5)
#   RATE []      total target msg/s (coordinated-omission aware); empty = as fast as flow control allows
#   INFLIGHT [64]  BROKER_CPU [0]  LOAD_CPU [1]  OUT [target/bench-vs]  MOSQUITTO [/usr/sbin/mosquitto]
#   RUMQTTD [~/.cargo/bin/rumqttd]
#   CONNS [10000]  CONNRATE [5000]   idle: connections to open, and how many per second
#   MOSQ_EXTRA []  extra lines for the generated mosquitto.conf (e.g. 'max_queued_messages 10000')
# Per-round .hgrm files, summaries, generated configs and broker logs go to
# $OUT/<scenario>-q<qos>-<size>B/; the last round's histograms are compared (side-by-side table and
# SVG plot) at the end of each case.
set -euo pipefail

cd "$(dirname "$0")/.."
SCENARIO=${SCENARIO:-pairs}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
QOS=${QOS:-0}
SIZE=${SIZE:-16}
N=${N:-10}
M=${M:-5}
RATE=${RATE:-}
INFLIGHT=${INFLIGHT:-64}
BROKER_CPU=${BROKER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-target/bench-vs}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
CONNS=${CONNS:-10000}
CONNRATE=${CONNRATE:-5000}
MOSQ_EXTRA=${MOSQ_EXTRA:-}
MQTT_VERSION=${MQTT_VERSION:-5}
RUMQTTD=${RUMQTTD:-$HOME/.cargo/bin/rumqttd}
if [[ -z ${BROKERS:-} ]]; then
    BROKERS="ratatosk mosquitto floor"
    [[ -x $RUMQTTD ]] && BROKERS+=" rumqttd"
fi
read -r -a brokers <<<"$BROKERS"
RATATOSK=${RATATOSK:-target/release/ratatosk}
BENCH=${BENCH:-target/release/ratatosk-bench}

case $SCENARIO in
pairs | fanin | fanout | shared | idle) ;;
*)
    echo "bench-vs: unknown SCENARIO '$SCENARIO'; use pairs, fanin, fanout, shared or idle" >&2
    exit 2
    ;;
esac
if [[ ! -x $RATATOSK || ! -x $BENCH ]]; then
    echo "building release binaries..." >&2
    cargo build --release -p ratatosk -p ratatosk-bench >&2
fi
case $MQTT_VERSION in
3 | 4 | 5) ;;
*)
    echo "bench-vs: MQTT_VERSION must be 3, 4 or 5, not '$MQTT_VERSION'" >&2
    exit 2
    ;;
esac
if ((${#brokers[@]} == 0)); then
    echo "bench-vs: BROKERS is empty" >&2
    exit 2
fi
for name in "${brokers[@]}"; do
    case $name in
    ratatosk | floor) ;;
    mosquitto)
        if [[ ! -x $MOSQUITTO ]]; then
            echo "bench-vs: $MOSQUITTO not found; install the Debian package mosquitto, set MOSQUITTO= or leave mosquitto out of BROKERS" >&2
            exit 2
        fi
        ;;
    rumqttd)
        if [[ ! -x $RUMQTTD ]]; then
            echo "bench-vs: $RUMQTTD not found; run 'cargo install rumqttd', set RUMQTTD= or leave rumqttd out of BROKERS" >&2
            exit 2
        fi
        ;;
    *)
        echo "bench-vs: unknown broker '$name' in BROKERS; use ratatosk, mosquitto, rumqttd or floor" >&2
        exit 2
        ;;
    esac
done
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

# rumqttd's configuration: the router settings of the crate's demo rumqttd.toml (max_connections
# raised when more idle connections are asked for), one listener of the load's protocol version, and
# no console, prometheus or metrics (the demo binds those to fixed ports). The listener's limits are
# the demo's except where they would cut off the load: a 16 MiB payload limit instead of 20 KiB, and
# no pause between accepts (the demo's 1 ms allows 1000 connections/s, and the idle scenario's
# connections then time out).
rumqttd_conf() { # port
    local kind=v5 max=10010
    ((MQTT_VERSION < 5)) && kind=v4
    ((CONNS + 10 > max)) && max=$((CONNS + 10))
    cat <<EOF
id = 0

[router]
id = 0
max_connections = $max
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[$kind.1]
name = "$kind-1"
listen = "127.0.0.1:$1"
next_connection_delay_ms = 0
    [$kind.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 16777216
    max_inflight_count = 100
    dynamic_filters = true
EOF
}

start_broker() { # name port dir [shards]
    case $1 in
    ratatosk)
        # shellcheck disable=SC2086 # RATATOSK_ARGS is a list of extra flags
        taskset -c "$BROKER_CPU" "$RATATOSK" --listen "127.0.0.1:$2" --shards "${4:-1}" ${RATATOSK_ARGS:-} >"$3/ratatosk.log" 2>&1 &
        ;;
    mosquitto)
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\n' "$2" "$MOSQ_EXTRA" >"$3/mosquitto.conf"
        taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$3/mosquitto.conf" >"$3/mosquitto.log" 2>&1 &
        ;;
    rumqttd)
        rumqttd_conf "$2" >"$3/rumqttd.toml"
        taskset -c "$BROKER_CPU" "$RUMQTTD" -q -c "$3/rumqttd.toml" >"$3/rumqttd.log" 2>&1 &
        ;;
    floor)
        taskset -c "$BROKER_CPU" "$BENCH" relay --listen "127.0.0.1:$2" >"$3/floor.log" 2>&1 &
        ;;
    esac
    BROKER_PID=$!
    if ! wait_listening "$2" "$BROKER_PID"; then
        echo "bench-vs: $1 did not start listening on 127.0.0.1:$2; see $3/$1.log" >&2
        exit 1
    fi
}

# Resident memory of a process in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# ---------------------------------------------------------------------------------------------
# idle: broker memory per idle connection.
if [[ $SCENARIO == idle ]]; then
    dir="$OUT/idle"
    mkdir -p "$dir"
    # Each connection is a descriptor in the load tool and in the broker.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if (($(ulimit -n) < CONNS + 100)); then
        echo "bench-vs: open-file limit $(ulimit -n) is too low for CONNS=$CONNS" >&2
        exit 2
    fi
    hold=$((CONNS / CONNRATE + 10)) # seconds the connections stay open: connect time plus margin
    echo "scenario: idle, $CONNS connections at $CONNRATE/s, MQTT $MQTT_VERSION, $ROUNDS rounds, brokers [${brokers[*]}]" \
        "(broker on cpu $BROKER_CPU, load on cpu $LOAD_CPU)"
    declare -A per_conn
    for round in $(seq 1 "$ROUNDS"); do
        for name in "${brokers[@]}"; do
            port=$(free_port)
            start_broker "$name" "$port" "$dir"
            sleep 0.5
            before=$(rss_kib "$BROKER_PID")
            out="$dir/$name-$round.txt"
            taskset -c "$LOAD_CPU" "$BENCH" conn -h 127.0.0.1 -p "$port" -V "$MQTT_VERSION" -c "$CONNS" -R "$CONNRATE" \
                --duration "$hold" --cores 1 >"$out" 2>&1 &
            load=$!
            # Wait (bounded by the hold time) until every connection is up, then let it settle.
            for _ in $(seq 1 $((hold * 10))); do
                grep -q "connect_succ total=$CONNS " "$out" && break
                kill -0 "$load" 2>/dev/null || break
                sleep 0.1
            done
            sleep 1
            after=$(rss_kib "$BROKER_PID")
            wait "$load" || echo "  ($name round $round: load exit $?; see $out)" >&2
            stop_broker
            succ=$(grep -o 'connect_succ=[0-9]*' "$out" | cut -d= -f2 || true)
            bytes=$(awk -v a="$after" -v b="$before" -v n="${succ:-0}" 'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print 0 }')
            echo "  round $round $name: connections=${succ:-0} rss before=${before} KiB after=${after} KiB -> $bytes bytes/connection"
            per_conn[$name]+="$bytes"$'\n'
            echo "$before $after ${succ:-0}" >>"$dir/$name.rss"
        done
    done
    echo
    echo "| broker | idle connections | bytes per connection (median) |"
    echo "|---|---:|---:|"
    bytes_of() { printf '%s' "${per_conn[$1]}" | awk 'NF' | median; }
    for name in "${brokers[@]}"; do
        printf '| %s | %s | %.0f |\n' "$name" "$CONNS" "$(bytes_of "$name")"
    done
    first=${brokers[0]}
    for name in "${brokers[@]:1}"; do
        printf '| ratio %s/%s | | %s |\n' "$first" "$name" "$(ratio "$(bytes_of "$first")" "$(bytes_of "$name")")"
    done
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Message scenarios: ratatosk-bench pubsub with the scenario's publishers and subscribers.
case $SCENARIO in
pairs) shape=(-c "$N" -t 'bench/%i') ; desc="$N publishers -> $N subscribers, 1:1" ;;
fanin) shape=(-c "$N" -t 'bench/%i' --subs 1 --sub-topic 'bench/#') ; desc="$N publishers -> 1 subscriber of bench/#" ;;
fanout) shape=(-c 1 -t 'bench/fanout' --subs "$N") ; desc="1 publisher -> $N subscribers" ;;
shared) shape=(-c "$N" -t 'bench/%i' --subs "$M" --sub-topic '$share/g/bench/#') ; desc="$N publishers -> $M subscribers of \$share/g/bench/#" ;;
esac

EXTRA=("$@")
rate_args=()
[[ -n $RATE ]] && rate_args=(--rate "$RATE")

run_round() { # name round qos size dir -> prints "rate p50 p99 p999 lost"
    local name=$1 round=$2 qos=$3 size=$4 dir=$5 port out
    # This runs in a command substitution, which does not inherit the EXIT trap.
    trap stop_broker EXIT
    port=$(free_port)
    start_broker "$name" "$port" "$dir"
    out="$dir/$name-$round.txt"
    # A non-zero exit (loss at QoS >= 1, a failed connection) is reported, not fatal to the table.
    taskset -c "$LOAD_CPU" "$BENCH" pubsub -h 127.0.0.1 -p "$port" -V "$MQTT_VERSION" "${shape[@]}" -q "$qos" \
        -s "$size" -I 0 -F "$INFLIGHT" -i 1 --duration "$DURATION" --cores 1 --quiet \
        --hgrm "$dir/$name-$round.hgrm" "${rate_args[@]}" "${EXTRA[@]}" >"$out" 2>&1 ||
        echo "  ($name round $round: exit $?; see $out)" >&2
    stop_broker
    local rate p50 p99 p999 lost
    rate=$(grep -o 'recv_rate=[0-9.]*' "$out" | cut -d= -f2 || true)
    p50=$(grep -o ' p50=[0-9.]*' "$out" | tail -1 | cut -d= -f2 || true)
    p99=$(grep -o ' p99=[0-9.]*' "$out" | tail -1 | cut -d= -f2 || true)
    p999=$(grep -o ' p99\.9=[0-9.]*' "$out" | tail -1 | cut -d= -f2 || true)
    lost=$(grep -o ' lost=[0-9]*' "$out" | tail -1 | cut -d= -f2 || true)
    echo "${rate:-0} ${p50:-0} ${p99:-0} ${p999:-0} ${lost:-0}"
}

echo "scenario: $SCENARIO ($desc), QoS [$QOS], payload [$SIZE] B, ${DURATION}s, rate ${RATE:-max}, MQTT $MQTT_VERSION," \
    "$ROUNDS rounds, brokers [${brokers[*]}] (broker on cpu $BROKER_CPU, load on cpu $LOAD_CPU)"
table=$'| scenario | QoS | size | broker | msg/s received | p50 µs | p99 µs | p99.9 µs | lost |\n|---|---:|---:|---|---:|---:|---:|---:|---:|\n'
for qos in $QOS; do
    for size in $SIZE; do
        dir="$OUT/$SCENARIO-q$qos-${size}B"
        mkdir -p "$dir"
        declare -A results=()
        echo "case: QoS $qos, $size B"
        for round in $(seq 1 "$ROUNDS"); do
            for name in "${brokers[@]}"; do
                line=$(run_round "$name" "$round" "$qos" "$size" "$dir")
                echo "  round $round $name: recv/s p50 p99 p99.9 (us) lost = $line"
                results[$name]+="$line"$'\n'
            done
        done
        col() { printf '%s' "${results[$1]}" | awk -v c="$2" 'NF {print $c}' | median; }
        for name in "${brokers[@]}"; do
            table+=$(printf '| %s | %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.0f |' "$SCENARIO" "$qos" "$size" "$name" \
                "$(col "$name" 1)" "$(col "$name" 2)" "$(col "$name" 3)" "$(col "$name" 4)" "$(col "$name" 5)")$'\n'
        done
        first=${brokers[0]}
        for name in "${brokers[@]:1}"; do
            table+="| $SCENARIO | $qos | $size | ratio $first/$name | $(ratio "$(col "$first" 1)" "$(col "$name" 1)") |"
            table+=" $(ratio "$(col "$first" 2)" "$(col "$name" 2)") | $(ratio "$(col "$first" 3)" "$(col "$name" 3)") |"
            table+=" $(ratio "$(col "$first" 4)" "$(col "$name" 4)") | |"$'\n'
        done
        hgrms=()
        for name in "${brokers[@]}"; do
            [[ -s $dir/$name-$ROUNDS.hgrm ]] && hgrms+=("$dir/$name-$ROUNDS.hgrm")
        done
        if ((${#hgrms[@]} >= 2)); then
            "$BENCH" compare "${hgrms[@]}" --svg "$dir/p99-compare.svg" >"$dir/compare.txt" 2>&1 || true
        fi
        unset results
    done
done
echo
printf '%s' "$table"
echo "(medians over $ROUNDS rounds; msg/s is what all subscribers together received per second of publishing;"
echo " lost is the median count of messages that never arrived; plots and per-round output in $OUT/$SCENARIO-q*)"
