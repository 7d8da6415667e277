"""Pairwise metrics of a reward model on labelled comparisons: accuracy (ties in reward count half, tie labels left
out), margins, mean rewards. They live in `rewardkit.model.metrics`, below training, which validates with them."""

from rewardkit.model.metrics import (
    PairwiseMetrics,
    comparison_metrics,
    evaluate,
    outcomes,
    pairwise_metrics,
    score_encoded_dataset,
)

__all__ = ["PairwiseMetrics", "comparison_metrics", "evaluate", "outcomes", "pairwise_metrics",
           "score_encoded_dataset"]
