"""Synthetic data with exact ground truth: captioned shapes ("a red circle") for training, tests, the
offline demo and the int8 towers' probe pictures; shot videos, speech and broken files for media tests
and benchmarks.

May import: the ground floor (mmsearch.config, .defaults, .errors, .hits) only. The lowest room, so
every other, the encoders included, may use it.
"""
