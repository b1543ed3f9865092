"""FID and KID with the standard InceptionV3 features, offline, through torch-fidelity.

Import the submodule that holds what you need: ``extractor`` (``build_extractor`` loads
torch-fidelity's InceptionV3 with locally found weights, never a download; the extractor
registry), ``features`` (``features_of`` turns a folder, a file list or a uint8 tensor into
features, cached on disk for files), ``metrics`` (``fid_kid`` with torch-fidelity's functions,
``score_per_class`` class by class), ``sources``, ``cache``, ``weights``, ``standin`` (a tiny
random-conv extractor for tests) and ``config`` (the ``cli fid`` options).

This file imports nothing, so ``augment.fid.config`` (the CLI's defaults) stays free of torch.
"""
