"""The training engine: config, Trainer, optimizers and schedules, checkpoints, run directories, DDP."""
