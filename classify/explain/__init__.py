"""Explanations: the Grad-CAM family with a faithfulness number, and a ViT's attention."""
