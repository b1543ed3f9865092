"""The study: augmented retraining, comparison reports with honest statistics, the one-command
pipeline, and the Classification Accuracy Score."""
