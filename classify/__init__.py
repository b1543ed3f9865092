"""Classifier workbench: datasets, the ResNet-50 family with pluggable attention, training,
evaluation and Grad-CAM."""
