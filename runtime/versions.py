"""Installed package versions, asked in one place."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (e.g. "onnxruntime"), or None when it is not installed."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
