#!/usr/bin/env bash
# make demo: the service end to end on this machine. Starts alignd on 127.0.0.1 (a free port,
# a temporary data directory), trains shallow, BP, FA, DFA and KP side by side on the paper's
# linear task (and BP and FA on MNIST when it is cached), follows them with `alignctl sessions watch`,
# prints the comparison, and stops the server.
set -euo pipefail
build="${1:-build}"
alignd="$build/server/alignd"
ctl="$build/client/alignctl"
dir=$(mktemp -d -t alignd-demo-XXXXXX)
cleanup() {
  [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$alignd" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 --data_dir "$dir/data" > "$dir/out" 2> "$dir/alignd.log" &
pid=$!
for _ in $(seq 100); do [[ -s "$dir/out" ]] && break; sleep 0.05; done
addr=$(awk 'NR==1{print $4}' "$dir/out")
export ALIGND_SERVER="$addr"
echo "alignd is serving on $addr (data in $dir, log in $dir/alignd.log)"
"$ctl" health

echo
echo "== The linear task of Lillicrap et al. (2016): 30-20-10 linear network, y* = T x =="
train=$("$ctl" datasets generate --kind linear --examples 2000 --name linear-train)
test=$("$ctl" datasets generate --kind linear --split test --examples 1000 --name linear-test)
sessions=()
for rule in shallow bp fa dfa kp; do
  sessions+=("$("$ctl" sessions create --dataset "$train" --eval-dataset "$test" --name "linear-$rule" \
      --sizes 30,20,10 --hidden-activation linear --output-activation linear --no-bias \
      --init uniform --init-scale 0.01 --rule "$rule" --feedback-scale 0.5 --lr 0.002 --batch 1 \
      --epochs 4 --metrics-every 50 --eval-every 1000)")
done
"$ctl" sessions watch "${sessions[@]}"
echo "(EVAL is the test NSE; ANGLE is the hidden update's angle to BP's. With one hidden layer"
echo " DFA sends the same signal as FA. The task has no noise: every rule that learns drives the"
echo " error to round-off; 'alignctl sessions list' and docs/RESULTS.md say how fast.)"

mnist=""
for d in "${ALIGND_MNIST_DIR:-}" "${XDG_CACHE_HOME:-$HOME/.cache}/alignd/mnist"; do
  [[ -n "$d" && -f "$d/train-images-idx3-ubyte" ]] && { mnist="$d"; break; }
done
if [[ -n "$mnist" ]]; then
  echo
  echo "== MNIST (cached in $mnist): 784-1000-10, tanh + softmax, one epoch, BP vs FA =="
  mtrain=$("$ctl" datasets upload --idx "$mnist/train-images-idx3-ubyte" "$mnist/train-labels-idx1-ubyte" --name mnist-train)
  mtest=$("$ctl" datasets upload --idx "$mnist/t10k-images-idx3-ubyte" "$mnist/t10k-labels-idx1-ubyte" --name mnist-test)
  msessions=()
  for rule in bp fa; do
    msessions+=("$("$ctl" sessions create --dataset "$mtrain" --eval-dataset "$mtest" --name "mnist-$rule" \
        --sizes 784,1000,10 --hidden-activation tanh --output-activation softmax --loss cross-entropy \
        --rule "$rule" --lr 0.1 --batch 32 --epochs 1 --metrics-every 100 --eval-every 625)")
  done
  "$ctl" sessions watch "${msessions[@]}"
  echo "(EVAL is the test error.)"
else
  echo
  echo "(MNIST is not cached; 'make mnist' fetches it, and the demo then trains on it too.)"
fi
echo
"$ctl" sessions list
