"""Machine learning: the canal localizer and grade classifier (torch and torchvision live only here).

A peer of ``storage``: it receives numpy arrays and metadata and returns results, never touching the
database. ``config``, ``preprocess`` and ``metrics`` do not import torch, so presets can be read and
figures computed without it; ``engine`` (the pipeline) and ``registry`` (weights files) do.
"""
