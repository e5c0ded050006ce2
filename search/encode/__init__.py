"""Pictures and words into unit vectors: safe picture decoding (images.py), model specs and hub access
(spec.py, hub.py), the encoders (base.py; models.py, open_clip through torch or ONNX Runtime;
onnx_encoder.py, the torch-free one; factory.py, which picks), the ONNX export and its cached towers
(onnx_export.py, onnx_towers.py), the int8 query tower (query_tower.py) and our model configs.

May import: the ground floor (mmsearch.config, .defaults, .errors, .hits) and synth/. Nothing here
knows of indexes, queries or answers.
"""
