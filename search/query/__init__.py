"""The front door and how a query is ranked: what a search asks (request.py) and answers (result.py), the
Engine (engine.py: check, understand, encode, search each vector space, check the catalog, fuse, group;
and indexing, zero-shot labels, the pictures behind hits for every door), the filter language
(filters.py), score calibration across spaces (fusion.py), segments grouped into hits (grouping.py),
second-stage reranking (rerank.py), duplicate groups and collapse (dedup.py), and the one-shot search
without torch (quick.py).

May import: the ground floor, encode/, storage/, learn/ (zero-shot labels) and indexer/ (Engine.index,
imported when it runs). quick.py keeps to the light modules (the query tower, the index folder's layout,
FAISS), so `mmsearch search` starts without torch or pydantic.
"""
