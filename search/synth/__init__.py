"""Synthetic data with exact ground truth: captioned shapes ("a red circle") for training, tests, the
offline demo and the int8 towers' probe pictures; shot videos, speech and broken files for media tests
and benchmarks.

The lowest room: it imports only the ground floor (mmsearch.config, .defaults, .errors, .hits), so every
other room, the encoders included, may use it.
"""
