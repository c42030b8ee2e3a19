"""The ``protocol`` block of ``metrics.json``: what produced a run's numbers, stated by the run.

Contract: any DataModule, LightningModule (system), model or callback may define
``protocol_facts(self) -> dict[str, Any]``: JSON-serialisable facts, namespaced by their top-level
key (``"data"``, ``"optimizer"``, ``"model"``, ``"cam"``, ...). ``run()`` calls it on the
DataModule, the system, the system's ``model`` and every callback, after testing, and merges the
dicts (``collect_protocol``) into ``record["protocol"]``. Tables print the facts that differ
between their rows (``infocam_exp.tables.aggregate.protocol_differences``). docs/protocol.md,
"The protocol block of metrics.json", lists the facts each component states.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (cached per resolved path, size and modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256(str(p), st.st_size, st.st_mtime_ns)


def file_fact(path: str | Path) -> dict[str, Any]:
    """``{"file": name, "path": str, "sha256": hex}`` of a file that defines part of a protocol
    (a split list, an annotation file); ``sha256`` is None when the file is absent."""
    p = Path(path)
    return {"file": p.name, "path": str(p), "sha256": file_sha256(p) if p.is_file() else None}


def merge_facts(into: dict[str, Any], facts: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Deep-merge ``facts`` into ``into`` (in place; returned). Nested dicts merge key by key; a
    leaf stated twice with different values keeps the later one and logs both."""
    for key, value in facts.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            merge_facts(into[key], value, source)
        else:
            if key in into and into[key] != value:
                log.warning("protocol fact %r: %r replaced by %r from %s", key, into[key], value, source)
            into[key] = dict(value) if isinstance(value, Mapping) else value
    return into


def collect_protocol(*components: Any) -> dict[str, Any]:
    """Merge the ``protocol_facts()`` of every component that has one (None and components without
    the method are skipped), in the given order.

    Raises:
        TypeError: a component's facts are not a dict or not JSON-serialisable (names it).
    """
    protocol: dict[str, Any] = {}
    for comp in components:
        method = getattr(comp, "protocol_facts", None)
        if comp is None or not callable(method):
            continue
        name = type(comp).__name__
        facts = method()
        if not isinstance(facts, Mapping):
            raise TypeError(f"{name}.protocol_facts() must return a dict, got {type(facts).__name__}")
        try:
            json.dumps(facts, allow_nan=True)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}.protocol_facts() is not JSON-serialisable ({e}); return plain "
                            "str / int / float / bool / None, lists and dicts") from e
        merge_facts(protocol, facts, name)
    return protocol
