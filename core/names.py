"""Names core's functions accept, torch-free: the CLI offers them as choices (and lists them in
``--help``) without importing torch."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")  # core.device.resolve_device (also cuda:N)
RESIZE_MODES = ("crop", "squash", "pad")  # how core.data.decode_image makes an image square
