"""Classifier training: configuration, presets, the trainer, optimizers and schedules, train-all."""
