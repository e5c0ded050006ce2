"""How a query is ranked: the Engine (engine.py: encode, search each vector space, check the catalog,
fuse, group), the filter language (filters.py), score calibration across spaces (fusion.py), segments
grouped into hits (grouping.py), second-stage reranking (rerank.py), duplicate groups and collapse
(dedup.py), and the one-shot search without torch (quick.py).

May import: the ground floor, encode/ and storage/. quick.py keeps to the light modules (the query
tower, the index folder's layout, FAISS), so `mmsearch search` starts without torch or pydantic.
"""
