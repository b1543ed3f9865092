"""Classifier workbench: datasets, the ResNet-50 family with pluggable attention, classical
augmentation (:mod:`classify.classical`), training, evaluation and Grad-CAM."""
