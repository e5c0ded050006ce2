"""mmsearch at the edges: the HTTP API (`mmsearch.api.app.create_app`), the command line (`mmsearch.api.cli`)
and the benchmarks (`mmsearch.api.bench`)."""
