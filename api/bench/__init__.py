"""Every benchmark, one home: `mmsearch bench index | media | ray | search | serve | oneshot | gpu`, one
module each, all timing, rating and showing their results through measure.py.

The top floor with api/: a benchmark may drive anything (the indexer, the engine, the HTTP app); nothing
imports a benchmark but the command line and tests.
"""
