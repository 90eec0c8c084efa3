#!/usr/bin/env bash
# make dashboard: alignd and its web dashboard on this machine, with something to look at.
# Starts alignd on 127.0.0.1 (a free port, a temporary data directory) and alignd-dashboard on
# http://127.0.0.1:${PORT:-8080}/, then trains the paper's linear task with shallow, BP and FA,
# three seeds each (a sweep: tick "Group seeds" for mean ± SD bands), slowly enough to watch.
# Ctrl-C stops both and removes the data.
set -euo pipefail
build="${1:-build}"
port="${PORT:-8080}"
ctl="$build/client/alignctl"
dir=$(mktemp -d -t alignd-dashboard-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$build/server/alignd" --listen 127.0.0.1:0 --metrics_listen "" --data_dir "$dir/data" \
  --max_running 9 > "$dir/alignd.out" 2> "$dir/alignd.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$dir/alignd.out" ]] && break; sleep 0.05; done
addr=$(awk 'NR==1{print $4}' "$dir/alignd.out")
"$build/dashboard/alignd-dashboard" --alignd "$addr" --listen "127.0.0.1:$port" \
  > "$dir/dashboard.out" 2> "$dir/dashboard.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$dir/dashboard.out" ]] && break; sleep 0.05; done
[[ -s "$dir/dashboard.out" ]] || { cat "$dir/dashboard.log" >&2; exit 1; }

export ALIGND_SERVER="$addr"
train=$("$ctl" datasets generate --kind linear --examples 2000 --name linear-train)
test=$("$ctl" datasets generate --kind linear --split test --examples 1000 --name linear-test)
ids=()
for rule in shallow bp fa; do
  for seed in 1 2 3; do
    ids+=("$("$ctl" -o name sessions create --dataset "$train" --eval-dataset "$test" \
        --name "linear $rule seed=$seed" --sizes 30,20,10 --hidden-activation linear \
        --output-activation linear --no-bias --init uniform --init-scale 0.01 --rule "$rule" \
        --feedback-scale 0.5 --lr 0.002 --batch 1 --epochs "${EPOCHS:-400}" --seed "$seed" \
        --metrics-every 50 --eval-every 1000 | sed 's|sessions/||')")
  done
done
selection=$(IFS=,; echo "${ids[*]}")
echo "alignd on $addr; the dashboard on $(awk 'NR==1{print $NF}' "$dir/dashboard.out")"
echo "  this sweep, grouped by seed:  http://127.0.0.1:$port/#s=$selection&group=1&log=loss,eval"
echo "Ctrl-C stops both."
wait "${pids[0]}"
