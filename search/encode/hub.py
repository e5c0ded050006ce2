"""The model hub client, told at once when its host cannot be reached (no torch import here)."""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlparse

from huggingface_hub import constants as hub_constants

log = logging.getLogger(__name__)


def offline_if_unreachable(timeout: float = 3.0) -> None:
    """Put the hub client in offline mode when its host cannot be reached. Otherwise an offline machine
    waits about a minute in the client's retries before failing, even when the weights are cached."""
    if hub_constants.HF_HUB_OFFLINE:
        return
    host = urlparse(hub_constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        log.info("cannot reach %s: using locally cached weights only", host)
        hub_constants.HF_HUB_OFFLINE = True
