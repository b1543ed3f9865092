"""Test-set evaluation of a trained classifier: metrics, predictions, figures."""
