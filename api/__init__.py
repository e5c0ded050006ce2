"""mmsearch at the edges: the HTTP API (`api.app.create_app`) and the command line (`api.cli`)."""
