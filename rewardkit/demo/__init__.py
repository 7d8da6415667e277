"""`rewardkit demo`: collect preferences, train a reward model, optimize against it, watch it get hacked."""

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import run_demo
from rewardkit.demo.report import write_report

__all__ = ["DemoConfig", "run_demo", "write_report"]
