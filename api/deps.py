"""Request dependencies: the engine and settings the app factory put on `app.state`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from mmsearch import Engine, IndexStateError, Settings


async def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise IndexStateError("the search engine is not open (the app's lifespan has not run)")
    return engine


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def shown_uris(request: Request) -> Callable[[str], str]:
    """How files' paths are shown to this caller: whole to an admin (every caller when no keys are set),
    else relative to the folder all indexed files share, so a read key learns no server paths. The
    shared folder is looked up once per request, not once per hit."""
    if getattr(request.state, "role", "admin") == "admin":
        return lambda uri: uri
    root = request.app.state.engine.common_root()
    return lambda uri: uri[len(root) :] if root and uri.startswith(root) else uri.rsplit("/", 1)[-1]


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
