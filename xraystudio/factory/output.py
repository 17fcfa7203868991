"""The output folder of a synthesis run: fingerprint, per-item files, the finished dataset.

Layout::

    synthesis.json              fingerprint of model and settings; a rerun must match it
    manifest.jsonl              every work item (id, source, mode, seed), fixed at the start
    imagesTr/<id>_0000.png      nnU-Net v2 raw layout
    labelsTr/<id>.png
    items/<id>.json             the item's metadata; written last, so it marks the item done
    failed/<id>.json            an item that could not be made, and why (retried by a rerun),
                                or whose input the chest check refused ("skipped": final)
    metadata.jsonl, dataset.json    the whole dataset, written once every item is done
    jsrt/                       (on request) the JSRT-style layout, cases.csv written at the end

Every file is written atomically by the process that made its item; processes never wait for
each other. Whoever finds every item done writes the dataset files, whose content depends on the
items alone, so two processes doing it at once write the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from xraystudio.errors import DatasetError
from xraystudio.factory.items import WorkItem
from xraystudio.io.atomic import write_text
from xraystudio.io.polarity import DECLARATION

log = logging.getLogger(__name__)

FINGERPRINT = "synthesis.json"
MANIFEST = "manifest.jsonl"
METADATA = "metadata.jsonl"
ITEMS = "items"
FAILED = "failed"
JSRT = "jsrt"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class Tally:
    inputs: int
    done: int  # items made (in this run or before)
    skipped_inputs: dict[str, int]  # reason ("not chest", ...) -> inputs not used
    skipped_items: int  # items of those inputs
    failed: int  # items that could not be made
    spacing: dict[str, int]  # where the spacing came from -> inputs with items made

    @property
    def assumed_spacing(self) -> int:
        """Inputs whose films carry no pixel spacing (a default was assumed)."""
        return self.spacing.get("assumed", 0)

    def warnings(self, out: Path) -> list[str]:
        """What the user must know of the inputs: those not used, and spacing assumed."""
        from xraystudio.masks import DEFAULT_SPACING_MM

        lines = []
        if self.skipped_inputs:
            why = ", ".join(f"{n} {reason}" for reason, n in self.skipped_inputs.items())
            lines.append(f"{sum(self.skipped_inputs.values())} of {self.inputs} inputs not used "
                         f"({why}); each is listed with its reason in {Path(out) / FAILED}")
        used = sum(self.spacing.values())
        if self.assumed_spacing:
            who = ("none of the films used records its pixel spacing"
                   if self.assumed_spacing == used
                   else f"{self.assumed_spacing} of the {used} films used record no pixel spacing")
            lines.append(f"{who}: {DEFAULT_SPACING_MM} mm was assumed for every size in mm (the "
                         "nodules' diameters); each item's spacing and its source are in "
                         f"{METADATA}")
        return lines


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

    def write_skip(self, item_id: str, reason: str, error: str) -> None:
        """An item whose input is not used (``reason``: the chest check's few words); unlike a
        failure it is not retried, as the same settings give the same verdict."""
        write_text(self.root / FAILED / f"{item_id}.json",
                   _dumps({"id": item_id, "error": error, "skipped": reason}) + "\n")

    def _records(self, items: list[WorkItem]) -> dict[str, dict]:
        out = {}
        for i in items:
            path = self.root / FAILED / f"{i.id}.json"
            if path.is_file():
                try:
                    out[i.id] = json.loads(path.read_text(encoding="utf-8"))
                except ValueError:  # half-written by hand or a foreign tool: a failure
                    out[i.id] = {"id": i.id}
        return out

    def failed(self, items: list[WorkItem]) -> set[str]:
        """Items that could not be made (a rerun retries them)."""
        return {k for k, r in self._records(items).items() if "skipped" not in r}

    def skipped(self, items: list[WorkItem]) -> dict[str, str]:
        """Items whose input is not used, with the reason."""
        return {k: r["skipped"] for k, r in self._records(items).items() if "skipped" in r}

    def settled(self, items: list[WorkItem]) -> int:
        """How many of ``items`` are done, failed or not used."""
        return len(self.done(items) | set(self._records(items)))

    def tally(self, items: list[WorkItem]) -> Tally:
        """What the whole run holds so far, by input."""
        skipped = self.skipped(items)
        reasons = {i.source.name: skipped[i.id] for i in items if i.id in skipped}
        spacing: dict[str, str] = {}
        for i in items:
            if i.source.name not in spacing and self.item_path(i.id).is_file():
                row = json.loads(self.item_path(i.id).read_text(encoding="utf-8"))
                spacing[i.source.name] = (row.get("spacing") or {}).get("source", "unknown")
        return Tally(inputs=len({i.source.name for i in items}), done=len(self.done(items)),
                     skipped_inputs=dict(sorted(Counter(reasons.values()).items())),
                     skipped_items=len(skipped), failed=len(self.failed(items)),
                     spacing=dict(sorted(Counter(spacing.values()).items())))

    def finish(self, items: list[WorkItem], description: str, jsrt: bool) -> bool:
        """Write the dataset files if every item is done, failed or not used; False (and
        nothing) otherwise. The others are left out of the dataset (and listed in ``failed/``)."""
        from xraystudio.io.nnunet import dataset_json

        if self.settled(items) < len(items):
            return False
        done = self.done(items)
        items = [i for i in items if i.id in done]
        # Files half-written by a killed process: no item is in flight once all are done.
        for sub in ("imagesTr", "labelsTr", ITEMS, FAILED, JSRT):
            for stale in (self.root / sub).rglob(".*.tmp*"):
                stale.unlink(missing_ok=True)
        rows = [json.loads(self.item_path(i.id).read_text(encoding="utf-8")) for i in items]
        write_text(self.root / METADATA, "".join(_dumps(r) + "\n" for r in rows))
        meta = dataset_json(len(rows), description, synthetic=True,
                            overlap_resolution="labels painted in increasing order, later over "
                                               "earlier", **DECLARATION)
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
