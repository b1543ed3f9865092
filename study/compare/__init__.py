"""Comparing classifier runs on paired test predictions, and the ``cli compare`` job."""
