#!/usr/bin/env bash
# Reverse-proxy / API-gateway benchmark harness (per-core efficiency).
#
# Starts an nginx upstream and the anchor proxies by hand (no system services),
# pins load generator + upstream to LOAD_CPU and the proxy under test to PROXY_CPU,
# runs wrk against every target for N rounds in alternating order, prints a table
# and writes results/<timestamp>.json. Every process it starts is stopped by PID
# on exit (also on Ctrl-C / errors).
#
# usage: bench/run.sh [options]
#   -r, --rounds N          rounds over all targets            (default 3)
#   -d, --duration D        wrk measured duration per run      (default 10s)
#   -c, --connections N     wrk connections                    (default 50)
#   -t, --threads N         wrk threads                        (default 1)
#   -w, --warmup D          wrk warm-up before each run        (default 2s)
#       --path P            request path                       (default /api/v1/users/123)
#       --only LIST         built-in targets to run, comma separated, from
#                           direct,nginx,haproxy,lua-jwt,lua-jwt-log,lua-rl   (default: all)
#       --target NAME=URL   extra target started by the caller (repeatable); if URL
#                           has no path, --path is appended
#       --target-pid NAME=PID  the extra target NAME is served by process PID: pin all
#                           its threads to PROXY_CPU and account its CPU time (repeatable)
#       --baseline NAME     target the ratio column is relative to (default nginx)
#   -h, --help
# env: LOAD_CPU (default 0), PROXY_CPU (default 1), BENCH_JWT_SECRET, PYTHON (python3)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Run from a writable copy when asked (BENCH_WORK=DIR) or when this folder is read-only
# (a read-only checkout); results/ accumulate in that copy.
if [[ -z ${BENCH_COPIED:-} ]] && { [[ -n ${BENCH_WORK:-} && ${BENCH_WORK%/} != "$BENCH_DIR" ]] || [[ ! -w $BENCH_DIR ]]; }; then
  dst=${BENCH_WORK:-${TMPDIR:-/tmp}/gw-bench}; mkdir -p "$dst"
  (cd "$BENCH_DIR" && tar --exclude=./results --exclude=./run -cf - .) | (cd "$dst" && tar -xf -) \
    && chmod -R u+w "$dst" || { echo "run.sh: cannot copy the harness to $dst" >&2; exit 1; }
  BENCH_COPIED=1 exec bash "$dst/run.sh" "$@"
fi
ROUNDS=3 DURATION=10s CONNS=50 THREADS=1 WARMUP=2s REQ_PATH=/api/v1/users/123
ONLY=direct,nginx,haproxy,lua-jwt,lua-jwt-log,lua-rl BASELINE=nginx
LOAD_CPU=${LOAD_CPU:-0} PROXY_CPU=${PROXY_CPU:-1}
PY=${PYTHON:-python3}
export BENCH_JWT_SECRET=${BENCH_JWT_SECRET:-bench-hs256-secret-change-me}
EXTRA_NAMES=() EXTRA_URLS=() TPID_NAMES=() TPID_PIDS=()

die() { echo "run.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case $1 in
    -r|--rounds) ROUNDS=$2; shift 2 ;;
    -d|--duration) DURATION=$2; shift 2 ;;
    -c|--connections) CONNS=$2; shift 2 ;;
    -t|--threads) THREADS=$2; shift 2 ;;
    -w|--warmup) WARMUP=$2; shift 2 ;;
    --path) REQ_PATH=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --baseline) BASELINE=$2; shift 2 ;;
    --target-pid)
      [[ $2 =~ ^([A-Za-z0-9_.-]+)=([0-9]+)$ ]] || die "bad --target-pid '$2' (want NAME=PID)"
      TPID_NAMES+=("${BASH_REMATCH[1]}"); TPID_PIDS+=("${BASH_REMATCH[2]}"); shift 2 ;;
    --target)
      [[ $2 =~ ^([A-Za-z0-9_.-]+)=(https?://[^\"\ ]+)$ ]] || die "bad --target '$2' (want NAME=http://host:port[/path])"
      EXTRA_NAMES+=("${BASH_REMATCH[1]}"); u=${BASH_REMATCH[2]}
      [[ $u =~ ^https?://[^/]+/?$ ]] && u="${u%/}$REQ_PATH"
      EXTRA_URLS+=("$u"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "--rounds must be >= 1"

need_install=0
for tool in nginx haproxy wrk taskset curl; do command -v "$tool" >/dev/null || need_install=1; done
[[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ]] || need_install=1
if ((need_install)); then
  [[ $(id -u) == 0 ]] || die "missing tools; as root run: apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-resty-lrucache lua-cjson haproxy wrk"
  echo "run.sh: installing the anchors from Debian's packages (once)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends nginx libnginx-mod-http-lua lua-resty-core \
    lua-resty-lrucache lua-cjson haproxy wrk util-linux curl >/dev/null || die "apt-get install failed"
  # Debian starts the packaged services; stop them so they hold no port or core here.
  for svc in nginx haproxy; do
    if command -v service >/dev/null; then service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi
for tool in nginx haproxy wrk taskset curl "$PY"; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# ---------------------------------------------------------------- targets
declare -A BUILTIN_PORT=([direct]=18081 [nginx]=18090 [haproxy]=18091 [lua-jwt]=18092 [lua-jwt-log]=18094 [lua-rl]=18093)
TNAMES=() TURLS=()
IFS=, read -r -a only_list <<<"$ONLY"
for n in direct nginx haproxy lua-jwt lua-jwt-log lua-rl; do        # fixed canonical order
  for o in "${only_list[@]}"; do
    [[ $o == "$n" ]] && { TNAMES+=("$n"); TURLS+=("http://127.0.0.1:${BUILTIN_PORT[$n]}$REQ_PATH"); }
  done
done
for o in "${only_list[@]}"; do [[ -n ${BUILTIN_PORT[$o]:-} ]] || die "--only: unknown target '$o'"; done
for i in "${!EXTRA_NAMES[@]}"; do
  for n in "${TNAMES[@]}"; do [[ $n != "${EXTRA_NAMES[$i]}" ]] || die "duplicate target name '$n'"; done
  TNAMES+=("${EXTRA_NAMES[$i]}"); TURLS+=("${EXTRA_URLS[$i]}")
done
[[ ${#TNAMES[@]} -gt 0 ]] || die "no targets"
wants() { local n; for n in "${TNAMES[@]}"; do [[ $n == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------- process bookkeeping
WORK_DIR=$BENCH_DIR
RUN_DIR=$WORK_DIR/run                  # logs, pid files, nginx temp dirs of the last run
TS=$(date -u +%Y%m%dT%H%M%SZ)
RAW=$RUN_DIR/runs.jsonl
PIDS=() PNAMES=() KIDS=() WRK_PID=
declare -A TPIDS=()                    # target name -> PIDs whose CPU time is "the proxy" for it

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [[ -n $WRK_PID ]] && kill -0 "$WRK_PID" 2>/dev/null; then kill -TERM "$WRK_PID" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do                      # graceful: SIGTERM what we started
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}" $WRK_PID; do             # wait up to ~5 s each, then SIGKILL
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  for pid in "${KIDS[@]}"; do                      # nginx workers, if a master died uncleanly
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  [[ ${#PIDS[@]} -gt 0 ]] && echo "cleanup: stopped ${#PIDS[@]} process(es) (${PIDS[*]}) and their workers" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "run.sh: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_bg NAME CPU PORT CMD...   (CMD must stay in the foreground; taskset execs it, so $! is its PID)
start_bg() {
  local name=$1 cpu=$2 port=$3; shift 3
  port_open "$port" && die "port $port already in use (left-over run? check 'ss -ltnp')"
  taskset -c "$cpu" "$@" >"$RUN_DIR/$name.out" 2>&1 &
  local pid=$!
  PIDS+=("$pid"); PNAMES+=("$name")
  for _ in $(seq 100); do
    port_open "$port" && break
    kill -0 "$pid" 2>/dev/null || { cat "$RUN_DIR/$name.out" "$RUN_DIR/$name.error.log" 2>/dev/null >&2; die "$name exited during start"; }
    sleep 0.05
  done
  port_open "$port" || die "$name did not open port $port"
  sleep 0.2   # nginx forks its worker after the listen socket exists
  # nginx workers are children of the master: remember them too so cleanup can't leak them
  local kid KIDS_OF; KIDS_OF=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  for kid in $KIDS_OF; do KIDS+=("$kid"); done
  TPIDS[$name]="$pid ${KIDS_OF:-}"
  printf '  %-12s pid %-7s cpu %s  port %s  (affinity: %s)\n' "$name" "$pid" "$cpu" "$port" \
    "$(taskset -cp "$pid" | sed 's/.*: //')"
}

rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR/tmp" "$WORK_DIR/results"
: >"$RAW"

NGX=(nginx -p "$BENCH_DIR/")
# pre-flight: how busy is the machine before we start anything? (other builds/benchmarks = noise)
bg_a=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep 2
bg_b=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
BG_BUSY=$(awk -v a="$bg_a" -v b="$bg_b" 'BEGIN{split(a,x," "); split(b,y," "); d=y[2]-x[2]; if (d<1) d=1; printf "%.1f", 100*(y[1]-x[1])/d}')
echo "pre-flight: machine busy ${BG_BUSY}% over 2 s before starting anything"
awk -v v="$BG_BUSY" 'BEGIN{exit !(v > 5)}' && echo "  WARNING: something else is using the CPUs; results will be noisy" >&2
echo "starting processes (load CPU $LOAD_CPU: upstream + wrk, proxy CPU $PROXY_CPU: proxy under test)"
start_bg upstream "$LOAD_CPU" 18081 "${NGX[@]}" -c conf/upstream.conf -e run/upstream.error.log
wants nginx   && start_bg nginx   "$PROXY_CPU" 18090 "${NGX[@]}" -c conf/nginx-proxy.conf -e run/nginx.error.log
wants haproxy && start_bg haproxy "$PROXY_CPU" 18091 haproxy -f "$BENCH_DIR/conf/haproxy.cfg" -db
wants lua-jwt && start_bg lua-jwt "$PROXY_CPU" 18092 "${NGX[@]}" -c conf/lua-jwt.conf -e run/lua-jwt.error.log
wants lua-jwt-log && start_bg lua-jwt-log "$PROXY_CPU" 18094 "${NGX[@]}" -c conf/lua-jwt-log.conf -e run/lua-jwt-log.error.log
wants lua-rl  && start_bg lua-rl  "$PROXY_CPU" 18093 "${NGX[@]}" -c conf/lua-rl.conf -e run/lua-rl.error.log
TPIDS[direct]=${TPIDS[upstream]}
for i in "${!TPID_NAMES[@]}"; do
  n=${TPID_NAMES[$i]} p=${TPID_PIDS[$i]}
  wants "$n" || die "--target-pid $n=$p: no target named '$n'"
  kill -0 "$p" 2>/dev/null || die "--target-pid $n=$p: no such process"
  taskset -a -p -c "$PROXY_CPU" "$p" >/dev/null || die "could not pin pid $p"
  TPIDS[$n]="${TPIDS[$n]:-} $p"
  printf '  %-12s pid %-7s cpu %s  (caller-started; all threads pinned)\n' "$n" "$p" "$PROXY_CPU"
done

# ---------------------------------------------------------------- token + sanity checks
TOKEN=$("$PY" "$BENCH_DIR/jwt.py" --sub client-42)
BAD_TOKEN=$("$PY" "$BENCH_DIR/jwt.py" --sub client-42 --bad-signature)
echo "sanity checks:"
for i in "${!TNAMES[@]}"; do
  code=$(curl -s -o "$RUN_DIR/check.body" -D "$RUN_DIR/check.hdr" -w '%{http_code}' --max-time 5 \
         -H "Authorization: Bearer $TOKEN" "${TURLS[$i]}" || true)
  [[ $code == 200 ]] || { cat "$RUN_DIR/check.body" >&2 2>/dev/null; die "${TNAMES[$i]} (${TURLS[$i]}) answered '$code', expected 200"; }
  rid=$(grep -i '^x-request-id:' "$RUN_DIR/check.hdr" | tr -d '\r' | cut -d' ' -f2 || true)
  printf '  %-12s 200 OK  %s bytes%s\n' "${TNAMES[$i]}" "$(wc -c <"$RUN_DIR/check.body")" "${rid:+  x-request-id=$rid}"
done
if wants lua-jwt; then
  u=http://127.0.0.1:18092$REQ_PATH
  c1=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BAD_TOKEN" "$u")
  c2=$(curl -s -o /dev/null -w '%{http_code}' "$u")
  [[ $c1 == 401 && $c2 == 401 ]] || die "lua-jwt must reject bad/missing token (got $c1/$c2)"
  echo "  lua-jwt      bad signature -> 401, no token -> 401 (HS256 verification active)"
fi

# ---------------------------------------------------------------- benchmark loop
# Sum of utime+stime (clock ticks) over PIDs; the comm field may contain spaces, so cut after ')'.
proc_ticks() {
  local p t=0 f
  for p in "$@"; do
    f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    set -- $f; t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
# CPU time of this shell's finished children (wrk) in ticks -> $CT. `times` must run in this
# shell (not in $(...) or a pipe), so it writes to a file first.
child_ticks() {
  times >"$RUN_DIR/times.txt"
  CT=$(awk 'NR==2{ s=0; for (i=1;i<=2;i++) { split($i, a, /[ms]/); s += a[1]*60 + a[2] } printf "%d", s*100 + 0.5 }' "$RUN_DIR/times.txt")
}
# /proc/stat per-CPU snapshot: "cpuN:busy:idle:steal:total:user+nice+sys ..." (ticks); busy includes irq/softirq
cpu_snap() {
  awk '/^cpu[0-9]+ /{busy=$2+$3+$4+$7+$8; idle=$5+$6; st=$9; printf "%s:%d:%d:%d:%d:%d ", $1, busy, idle, st, busy+idle+st, $2+$3+$4}' /proc/stat
}

run_wrk() {  # run_wrk OUTFILE DURATION URL
  local rc=0
  taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$2" --timeout 5s \
    -H "Authorization: Bearer $TOKEN" -s "$BENCH_DIR/wrk/report.lua" "$3" >"$1" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || rc=$?
  WRK_PID=
  return "$rc"
}

N=${#TNAMES[@]}
echo "benchmark: $N target(s) x $ROUNDS round(s), wrk -t$THREADS -c$CONNS -d$DURATION (+$WARMUP warm-up each), path $REQ_PATH"
seq_no=0
for ((r=1; r<=ROUNDS; r++)); do
  order=()
  if (( r % 2 == 1 )); then for ((i=0; i<N; i++)); do order+=("$i"); done
  else for ((i=N-1; i>=0; i--)); do order+=("$i"); done; fi
  for i in "${order[@]}"; do
    name=${TNAMES[$i]} url=${TURLS[$i]}
    seq_no=$((seq_no+1))
    run_wrk "$RUN_DIR/warmup.out" "$WARMUP" "$url" || die "wrk warm-up failed for $name: $(cat "$RUN_DIR/warmup.out")"
    sleep 0.5
    tp=${TPIDS[$name]:-}
    before=$(cpu_snap); pb=$(proc_ticks $tp); ub=$(proc_ticks ${TPIDS[upstream]}); child_ticks; wb=$CT
    run_wrk "$RUN_DIR/wrk.out" "$DURATION" "$url" || die "wrk failed for $name: $(cat "$RUN_DIR/wrk.out")"
    after=$(cpu_snap); pa=$(proc_ticks $tp); ua=$(proc_ticks ${TPIDS[upstream]}); child_ticks; wa=$CT
    [[ -n $tp ]] && ptk=$((pa - pb)) || ptk=null
    [[ $name == direct ]] && utk=0 || utk=$((ua - ub))   # for direct the upstream *is* the target
    cat "$RUN_DIR/wrk.out" >>"$RUN_DIR/wrk-all.log"
    wj=$(sed -n 's/^WRKJSON //p' "$RUN_DIR/wrk.out")
    [[ -n $wj ]] || die "no WRKJSON line from wrk for $name: $(cat "$RUN_DIR/wrk.out")"
    printf '{"round":%d,"seq":%d,"target":"%s","url":"%s","cpu_before":"%s","cpu_after":"%s","ticks":{"target":%s,"upstream":%d,"wrk":%d},"wrk":%s}\n' \
      "$r" "$seq_no" "$name" "$url" "${before% }" "${after% }" "$ptk" "$utk" "$((wa - wb))" "$wj" >>"$RAW"
    "$PY" "$BENCH_DIR/summarize.py" --progress --raw "$RAW"
    sleep 1
  done
done

# ---------------------------------------------------------------- gateway counters + summary
STATS_JSON='{}'
if wants lua-jwt; then STATS_JSON=$(curl -s --max-time 5 http://127.0.0.1:18092/__gw_stats || echo '{}'); fi
OUT=$WORK_DIR/results/$TS.json
"$PY" "$BENCH_DIR/summarize.py" --raw "$RAW" --out "$OUT" --baseline "$BASELINE" \
  --param rounds="$ROUNDS" --param duration="$DURATION" --param connections="$CONNS" \
  --param threads="$THREADS" --param warmup="$WARMUP" --param path="$REQ_PATH" \
  --param load_cpu="$LOAD_CPU" --param proxy_cpu="$PROXY_CPU" \
  --param target_pids="$(for i in "${!TPID_NAMES[@]}"; do printf '%s=%s ' "${TPID_NAMES[$i]}" "${TPID_PIDS[$i]}"; done)" \
  --param background_busy_pct="$BG_BUSY" \
  --lua-jwt-stats "$STATS_JSON"
