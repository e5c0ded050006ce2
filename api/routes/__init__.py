"""HTTP routes, one router per area; `mmsearch.api.app.create_app` mounts them."""
