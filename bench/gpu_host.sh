#!/usr/bin/env bash
# The GPU proof on a bare GPU host with torch (no Ray, MLflow, Optuna; no network), in two phases
# so that each call carries at most 64 MiB (BENCHMARKS.md, "GPU"):
#
#   bench/gpu_host.sh bench  P2_DIR   # the CIFAR tarball + bundle part 2: unpack, bench/gpu.py
#   bench/gpu_host.sh search P1_DIR   # bundle part 1: install, a real `cnn-tune run` on the GPU
#
# Parts come from ../shared/tools/offline-bundle. Both phases share $STAGE (default
# /tmp/gpu-stage) and write every result to $OUT (default ./gpu-out) as soon as they have it.
set -uo pipefail
phase=$1 parts=$2
stage=${STAGE:-/tmp/gpu-stage}
out=${OUT:-$PWD/gpu-out}
mkdir -p "$stage" "$out"
export PYTHONUNBUFFERED=1
GPU_BENCH_S=${GPU_BENCH_S:-270}      # bench/gpu.py's own limit is 200 s; this cuts a hang
SEARCH_S=${SEARCH_S:-240}            # the whole `cnn-tune run`
BUDGET_S=${BUDGET_S:-170}            # search.time_budget_s: a normal end, trials cut FINISHED
TRIALS=${TRIALS:-32}

if [[ $phase == bench ]]; then
  cp "$parts"/* "$stage"/
  { nvidia-smi; python3 -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"; } >"$out/machine.txt" 2>&1
  mkdir -p "$stage/cifar" && tar -xzf "$stage/cifar10-train-jpeg.tar.gz" -C "$stage/cifar"
  timeout "$GPU_BENCH_S" python3 bench/gpu.py --data-root "$stage/cifar" --out "$stage/bench" \
    --results "$out/gpu-runs.jsonl" >"$out/gpu.txt" 2>"$out/gpu-err.txt"
  echo "bench/gpu.py exit $?" | tee -a "$out/gpu.txt"
  cp "$out/gpu-runs.jsonl" "$out/gpu.txt" "$stage/" 2>/dev/null
  exit 0
fi

[[ $phase == search ]] || { echo "phase: bench or search" >&2; exit 2; }
# Either both phases on one warm machine, or (when the machine went back between the calls)
# one call carrying the CIFAR tarball and a trimmed site.tar.xz that fits 64 MiB with it.
if [[ -f $parts/site.tar.xz ]]; then
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall('/tmp', filter='data')" \
    "$parts/site.tar.xz" || exit 3
  mkdir -p "$stage/cifar" && tar -xzf "$parts/cifar10-train-jpeg.tar.gz" -C "$stage/cifar"
  touch "$stage/gpu.txt"
else
  [[ -f $stage/gpu.txt ]] || { echo "$stage is gone: run the bench phase first" >&2; exit 3; }
  cat "$parts"/site.tgz.part-* "$stage"/site.tgz.part-* | tar -xz -C /tmp || exit 3
fi
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import ray, mlflow, optuna; print('ray', ray.__version__, 'mlflow', mlflow.__version__, 'optuna', optuna.__version__)" >>"$out/machine.txt" 2>&1
# The best packing bench/gpu.py measured (trials per GPU), else 4.
n=$(sed -n 's/^RESULT best_pack_trials=//p' "$stage/gpu.txt"); n=${n:-${PACK:-4}}
gpus=$(python3 -c "print(round(1 / $n, 4))")
echo "search: gpus_per_trial=$gpus ($n per GPU), $TRIALS trials, budget $BUDGET_S s" | tee "$out/search-plan.txt"
uri=sqlite:///$stage/mlruns.db
timeout "$SEARCH_S" python3 -m tune.cli run configs/cifar10.yaml --json --name gpu-proof \
  --set dataset=imagefolder --set data_root="$stage/cifar" --set cache_dir="$stage/bench/cache" \
  --set resources.gpus_per_trial="$gpus" --set resources.cpus_per_trial=2 \
  --set search.num_samples="$TRIALS" --set search.time_budget_s="$BUDGET_S" \
  --set storage_path="$stage/ray_results" --set mlflow.tracking_uri="$uri" \
  >"$out/search.json" 2>"$out/search-err.txt"
echo "cnn-tune run exit $?" | tee -a "$out/search-plan.txt"
python3 bench/gpu_search_check.py "$uri" cnn-tune-cifar10 "$out/search.json" "$stage/gpu-runs.jsonl" \
  >"$out/search-check.txt" 2>&1
echo "check exit $?" | tee -a "$out/search-plan.txt"
