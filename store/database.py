"""Engines for the database the service runs on."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def asyncpg_url(url: str) -> str:
    """`postgresql://...` as users write it, in the form SQLAlchemy's asyncpg dialect wants."""
    scheme, _, rest = url.partition("://")
    if scheme in {"postgres", "postgresql", "postgresql+asyncpg"}:
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use postgresql://")


def plain_url(url: str) -> str:
    """The libpq form of a URL (what asyncpg.connect and psql accept)."""
    return "postgresql://" + url.partition("://")[2]


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
    )
