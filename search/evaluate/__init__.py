"""How well an index answers a labelled set: the set's file format and its checks against an index
(labels.py), the metrics as pure functions of ranks (metrics.py), running the queries and the zero-shot
classification through an engine (run.py), and plots of a report (plots.py, matplotlib loaded only
there).

May import: the ground floor, synth/, encode/, storage/, query/ (the engine answers the queries) and
learn/ (the zero-shot classifier).
"""
