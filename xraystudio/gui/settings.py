"""What the app remembers between runs, in one place on top of QSettings.

Values go through small typed accessors because QSettings returns strings from INI files and
native types from the registry; callers should never see the difference.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 10


class AppSettings:
    """Recent files and projects, last folder, window layout, generation defaults, models."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("xraystudio", "xraystudio")

    # ----------------------------------------------------------- primitives
    def _get_str(self, key: str, default: str = "") -> str:
        value = self.store.value(key, default)
        return default if value is None else str(value)

    def _get_json(self, key: str, default):
        text = self._get_str(key)
        if not text:
            return default
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return default

    def _set_json(self, key: str, value) -> None:
        self.store.setValue(key, json.dumps(value))

    def sync(self) -> None:
        self.store.sync()

    # ---------------------------------------------------------------- files
    @property
    def first_run(self) -> bool:
        return self._get_str("app/started") != "1"

    def mark_started(self) -> None:
        self.store.setValue("app/started", "1")

    @property
    def recent_files(self) -> list[str]:
        return [p for p in self._get_json("files/recent", []) if isinstance(p, str)]

    def add_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [path] + [p for p in self.recent_files if p != path]
        self._set_json("files/recent", items[:MAX_RECENT])
        self.store.setValue("files/last_folder", str(Path(path).parent))

    def clear_recent(self) -> None:
        self._set_json("files/recent", [])

    @property
    def recent_projects(self) -> list[str]:
        return [p for p in self._get_json("projects/recent", []) if isinstance(p, str)]

    def add_recent_project(self, folder: str | Path) -> None:
        folder = str(Path(folder).resolve())
        items = [folder] + [p for p in self.recent_projects if p != folder]
        self._set_json("projects/recent", items[:MAX_RECENT])

    def clear_recent_projects(self) -> None:
        self._set_json("projects/recent", [])

    @property
    def last_save_folder(self) -> str:
        """Where a result was last saved ("" before the first save): results go to a folder
        the user chose to write in, never by default beside a (possibly read-only) source."""
        return self._get_str("files/last_save_folder", "")

    @last_save_folder.setter
    def last_save_folder(self, folder: str) -> None:
        self.store.setValue("files/last_save_folder", folder)

    @property
    def last_folder(self) -> str:
        return self._get_str("files/last_folder", str(Path.home()))

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self.store.setValue("files/last_folder", folder)

    # --------------------------------------------------------------- layout
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        geometry = self.store.value("window/geometry")
        state = self.store.value("window/state")
        return (geometry if isinstance(geometry, QByteArray) else None,
                state if isinstance(state, QByteArray) else None)

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    # ------------------------------------------------------------ generation
    @property
    def generation(self) -> dict:
        value = self._get_json("generation/defaults", {})
        return value if isinstance(value, dict) else {}

    @generation.setter
    def generation(self, values: dict) -> None:
        self._set_json("generation/defaults", values)

    @property
    def model_folders(self) -> list[str]:
        return [p for p in self._get_json("generation/models", []) if isinstance(p, str)]

    @model_folders.setter
    def model_folders(self, folders: list[str]) -> None:
        self._set_json("generation/models", list(dict.fromkeys(folders)))

    # ---------------------------------------------------------------- editing
    @property
    def editing(self) -> dict:
        value = self._get_json("editing/state", {})
        return value if isinstance(value, dict) else {}

    @editing.setter
    def editing(self, values: dict) -> None:
        self._set_json("editing/state", values)

    # ----------------------------------------------------------- segmentation
    @property
    def auto_segment(self) -> bool:
        """Segment the anatomy of a radiograph opened without masks (on unless turned off)."""
        return self._get_str("segmentation/auto", "1") not in ("0", "false", "False")

    @auto_segment.setter
    def auto_segment(self, on: bool) -> None:
        self.store.setValue("segmentation/auto", "1" if on else "0")
