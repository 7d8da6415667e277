"""Reward-model quality without PPO."""
