# labkit's version: in every transcript and chapter key, and what `labkit --version` prints.
"""Its own module, so the build can read it without importing the public API package."""

from __future__ import annotations

__version__ = "0.1.0"
