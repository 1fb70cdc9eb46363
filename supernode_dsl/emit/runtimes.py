"""Emitters: runtimes (being written)."""

from __future__ import annotations

from supernode_dsl.emit.base import Emitter

__all__ = ["EMITTERS"]

EMITTERS: tuple[type[Emitter], ...] = ()
