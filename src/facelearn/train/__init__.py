"""Training: the engine, tasks, checkpoints and schedules."""
