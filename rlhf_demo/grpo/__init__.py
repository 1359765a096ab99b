"""grpo: Group Relative Policy Optimization with TRL's GRPOTrainer (``config.py``, ``stream.py``, ``trainer.py``)."""
