"""Request dependencies: the engine and settings the app factory put on `app.state`."""

from __future__ import annotations

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


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
