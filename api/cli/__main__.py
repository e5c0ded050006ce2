"""`python -m mmsearch.api.cli`: the full command line, as the `mmsearch` script runs it."""

from mmsearch.api.cli import main

main()
