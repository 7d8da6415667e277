#!/usr/bin/env bash
# One GPU check, meant to run in under 8 minutes on one H100/H200-class GPU (not yet run on one: no GPU was lent
# to the session that wrote it; the dry run below passes on a CPU):
#   1. the CUDA paths' equivalence tests (tests/perf/test_cuda_paths.py: packed / prefix-shared decoders, packed
#      encoders, scoring and bf16 training on the GPU) and the fast-path tests of tests/perf;
#   2. training throughput against TRL's RewardTrainer in bf16 on a Llama of Qwen2.5-0.5B's shape (24 layers,
#      width 896, 14 heads / 2 KV heads, vocabulary 151,936; random weights built from a config), HH pairs and
#      K = 4 rankings, with MFU against the bf16 matmul peak measured on the GPU and against its datasheet peak;
#   3. scoring throughput in bf16 on the same model against the best plain transformers loop.
# Results: benchmarks/results/gpu_train.{json,md}, gpu_score.{json,md}; commit them with the log.
#
#   benchmarks/gpu_check.sh             # on a machine with a CUDA GPU, from the repository root or anywhere
#   benchmarks/gpu_check.sh --dry-run   # on a CPU: the same steps on the small model, 1 step each, results to a
#                                       # temporary directory (checks that every part runs; ~5 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${1:-}" == "--dry-run" ]]; then
  DEVICE=cpu SHAPE=bench PRECISION=fp32 STEPS=1 REPEATS=1 TEXTS=32 THREADS=1
  BENCHMARK_RESULTS_DIR=$(mktemp -d)
  export BENCHMARK_RESULTS_DIR
  echo "dry run on the CPU: results go to $BENCHMARK_RESULTS_DIR"
else
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  DEVICE=cuda SHAPE=qwen2.5-0.5b PRECISION=bf16 STEPS=30 REPEATS=3 TEXTS=512 THREADS=8
fi
started=$SECONDS

echo "== 1/3 equivalence tests ($DEVICE)"
python -m pytest -q -p no:cacheprovider tests/perf

echo "== 2/3 training throughput against TRL ($SHAPE, $PRECISION)"
python benchmarks/train_throughput.py --device "$DEVICE" --shape "$SHAPE" --precision "$PRECISION" \
  --workloads hh k4 --hh-steps "$STEPS" --k4-steps "$STEPS" --systems trl rewardkit --repeats "$REPEATS" \
  --threads "$THREADS" --eval-comparisons 48 --lr 1e-5 --output gpu_train

echo "== 3/3 scoring throughput against the best plain loop ($SHAPE, $PRECISION)"
python benchmarks/score_throughput.py --device "$DEVICE" --shape "$SHAPE" --precision "$PRECISION" \
  --workloads hh-pairs best-of-8 --texts "$TEXTS" --repeats "$REPEATS" --threads "$THREADS" --no-ablations \
  --output gpu_score

echo "gpu_check done in $((SECONDS - started)) s"
