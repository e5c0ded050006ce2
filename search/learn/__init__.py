"""What a model learns or is asked without a query: contrastive training and fine-tuning into a local
open_clip model folder (train.py), from the caption files pairs.py reads; zero-shot classification and
tagging a collection (classify.py).

May import: the ground floor, synth/, encode/ and storage/ (tags are written to the catalog).
"""
