"""Reward models from preference pairs: config, pairs, TRL's RewardTrainer behind one record per step."""
