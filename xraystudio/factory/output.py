"""The output folder of a synthesis run: fingerprint, per-item files, the finished dataset.

Layout::

    synthesis.json              fingerprint of model and settings; a rerun must match it
    manifest.jsonl              every work item (id, source, mode, seed), fixed at the start
    imagesTr/<id>_0000.png      nnU-Net v2 raw layout
    labelsTr/<id>.png
    items/<id>.json             the item's metadata; written last, so it marks the item done
    failed/<id>.json            an item that could not be made, and why (retried by a rerun)
    metadata.jsonl, dataset.json    the whole dataset, written once every item is done
    jsrt/                       (on request) the JSRT-style layout, cases.csv written at the end

Every file is written atomically by the process that made its item; processes never wait for
each other. Whoever finds every item done writes the dataset files, whose content depends on the
items alone, so two processes doing it at once write the same bytes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from xraystudio.errors import DatasetError
from xraystudio.factory.items import WorkItem
from xraystudio.io.atomic import write_text

log = logging.getLogger(__name__)

FINGERPRINT = "synthesis.json"
MANIFEST = "manifest.jsonl"
METADATA = "metadata.jsonl"
ITEMS = "items"
FAILED = "failed"
JSRT = "jsrt"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class OutputFolder:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def image_path(self, item_id: str) -> Path:
        return self.root / "imagesTr" / f"{item_id}_0000.png"

    def label_path(self, item_id: str) -> Path:
        return self.root / "labelsTr" / f"{item_id}.png"

    def item_path(self, item_id: str) -> Path:
        return self.root / ITEMS / f"{item_id}.json"

    def prepare(self, fingerprint: dict, items: list[WorkItem]) -> None:
        """Make the folder, or check that an existing one was made with these settings."""
        fp_file = self.root / FINGERPRINT
        manifest = "".join(_dumps({"id": i.id, "source": i.source.to_dict(), "mode": i.mode,
                                   "seed": i.seed}) + "\n" for i in items)
        if fp_file.is_file():
            try:
                old = json.loads(fp_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise DatasetError(f"{fp_file} is damaged ({exc}); use a new --out") from None
            if old != fingerprint:
                keys = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
                raise DatasetError(
                    f"{self.root} was made with other settings (they differ in "
                    f"{', '.join(keys)}); rerun with the same settings to resume, or choose "
                    "another --out")
            if (self.root / MANIFEST).is_file() and (self.root / MANIFEST).read_text(
                    encoding="utf-8") != manifest:
                raise DatasetError(f"{self.root} holds another list of work items (have the "
                                   "inputs changed?); choose another --out")
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise DatasetError(f"{self.root} exists and is not a synthesis output folder; "
                               "choose an empty or new --out")
        (self.root / ITEMS).mkdir(parents=True, exist_ok=True)
        write_text(self.root / MANIFEST, manifest)
        write_text(fp_file, json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")

    def done(self, items: list[WorkItem]) -> set[str]:
        return {i.id for i in items if self.item_path(i.id).is_file()}

    def write_item(self, row: dict) -> None:
        write_text(self.item_path(row["id"]), _dumps(row) + "\n")
        (self.root / FAILED / f"{row['id']}.json").unlink(missing_ok=True)

    def write_failure(self, item_id: str, error: str) -> None:
        write_text(self.root / FAILED / f"{item_id}.json", _dumps({"id": item_id, "error": error}) + "\n")

    def failed(self, items: list[WorkItem]) -> set[str]:
        return {i.id for i in items if (self.root / FAILED / f"{i.id}.json").is_file()}

    def finish(self, items: list[WorkItem], description: str, jsrt: bool) -> bool:
        """Write the dataset files if every item is done or failed; False (and nothing)
        otherwise. Failed items are left out of the dataset (and listed in ``failed/``)."""
        from xraystudio.io.nnunet import dataset_json

        done = self.done(items)
        if len(done | self.failed(items)) < len(items):
            return False
        items = [i for i in items if i.id in done]
        # Files half-written by a killed process: no item is in flight once all are done.
        for sub in ("imagesTr", "labelsTr", ITEMS, FAILED, JSRT):
            for stale in (self.root / sub).rglob(".*.tmp*"):
                stale.unlink(missing_ok=True)
        rows = [json.loads(self.item_path(i.id).read_text(encoding="utf-8")) for i in items]
        write_text(self.root / METADATA, "".join(_dumps(r) + "\n" for r in rows))
        meta = dataset_json(len(rows), description, synthetic=True,
                            overlap_resolution="labels painted in increasing order, later over "
                                               "earlier")
        write_text(self.root / "dataset.json", json.dumps(meta, indent=2) + "\n")
        if jsrt:
            self._finish_jsrt(rows)
        log.info("dataset complete: %d images in %s", len(rows), self.root)
        return True

    def _finish_jsrt(self, rows: list[dict]) -> None:
        from xraystudio.io.datasets import CaseInfo, write_cases_csv

        infos, crowded = [], 0
        for r in rows:
            nods = r["nodules"] + r["source_nodules"]
            sp = r["spacing_mm"]
            if len(nods) == 1:
                n = nods[0]
                infos.append(CaseInfo(r["id"], True, n["x"], n["y"], n["diameter_mm"] / sp,
                                      n["diameter_mm"], n.get("subtlety"), spacing_mm=sp))
            elif not nods:
                infos.append(CaseInfo(r["id"], False, spacing_mm=sp))
            else:  # the JSRT layout holds one nodule per case
                crowded += 1
        if crowded:
            log.warning("%d of %d images have more than one nodule and are left out of the "
                        "JSRT layout, which holds one per case", crowded, len(rows))
        write_cases_csv(self.root / JSRT, infos)
