"""Where items and vectors live: the SQL catalog (schema.py, catalog.py, Alembic versions in
migrations/), the FAISS vector index (index_types.py, vectors.py; faiss_gpu.py on a GPU), and the index
folder that keeps them in agreement (layout.py, store.py).

May import: the ground floor and encode/ (an index folder records its model and keeps its query tower).
Nothing here knows how a query is ranked.
"""
