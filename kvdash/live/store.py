"""History of live runs: one SQLite file, created on first use.

Location: $KVDASH_DATA_DIR, else $XDG_DATA_HOME/kvdash, else ~/.local/share/kvdash. Rows hold the
whole result as JSON (never pickled) plus a few columns to list and filter them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    result TEXT NOT NULL
)
"""


def default_path() -> Path:
    root = os.environ.get("KVDASH_DATA_DIR")
    if root:
        return Path(root) / "runs.sqlite"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "kvdash" / "runs.sqlite"


class RunStore:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10)
        con.execute(SCHEMA)
        return con

    def add(self, result: dict) -> int:
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO runs (created, device, model, result) VALUES (?, ?, ?, ?)",
                (result["created"], result["device"]["name"], result["shape"]["name"], json.dumps(result)),
            )
            return cur.lastrowid

    def all(self, limit: int = 500) -> list[dict]:
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute("SELECT id, result FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(json.loads(text), id=row_id) for row_id, text in rows]
