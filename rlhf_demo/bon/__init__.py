"""bon: best-of-N distillation: sample N answers of the reference, keep the best, fine-tune on them with
TRL's SFTTrainer (``config.py``, ``select.py``, ``stream.py``, ``trainer.py``)."""
