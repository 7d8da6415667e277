"""Reward-model quality without PPO.

- `pairwise`: accuracy, margin (used by the trainer); `scored`: score a dataset once (`score_dataset`);
- `bootstrap`, `subsets` (RewardBench sections), `ranking` (top-1, Kendall tau), `agreement` (labeller ceiling),
  `calibration` (ECE, Brier, log-loss, temperature), `length` (length bias): one metric family per module;
- `suite`: all of them for one dataset (`evaluate_dataset`, `summarize`); `report`, `plots`: Markdown/HTML/PNG;
  `cli`: `rewardkit eval`.
"""
