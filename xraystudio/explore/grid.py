"""A sweep's export: the labelled grid as one PNG, and every cell's parameters and figures as CSV
and JSON. Every file is written atomically, so a reader never sees half a grid.

The grid has x across (column headers), y down (row headers) and one block per z value (its
title above it); each cell shows its image and, under it, its PSNR/SSIM against the source and
the chosen metric. A cell that failed or did not run (a cancelled sweep) is a grey box saying so.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xraystudio.explore.sweep import METRICS, SweepRecord
from xraystudio.io.atomic import atomic_path, write_text

BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM = (150, 150, 150)
MISSING = (70, 70, 70)
PARAMETER_COLUMNS = ("seed", "model", "mode", "steps", "scheduler", "conditioning_scale",
                     "control_start", "control_end", "guide_strength", "prior")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def metric_text(metrics: dict, metric: str | None = None) -> str:
    """``PSNR 18.3 · SSIM 0.712`` and the chosen metric, for a cell's caption."""
    parts = []
    if "psnr" in metrics and not math.isnan(metrics["psnr"]):
        parts.append("PSNR ∞" if math.isinf(metrics["psnr"]) else f"PSNR {metrics['psnr']:.1f}")
    if "ssim" in metrics and not math.isnan(metrics["ssim"]):
        parts.append(f"SSIM {metrics['ssim']:.3f}")
    if metric and metric not in ("psnr", "ssim") and metric in metrics:
        v = metrics[metric]
        short = {"nodule_contrast": "contrast", "faithfulness_dice": "Dice lungs",
                 "faithfulness_dice_heart": "Dice heart", "diff_to_first": "Δ first",
                 "psnr_lungs": "PSNR lungs", "ssim_lungs": "SSIM lungs"}.get(metric, metric)
        parts.append(f"{short} {v:.3f}" if not math.isnan(v) else f"{short} —")
    return " · ".join(parts)


def _cell_picture(image: np.ndarray, width: int) -> Image.Image:
    arr = np.clip(np.asarray(image, np.float32), 0, 1)
    h, w = arr.shape
    height = max(1, round(width * h / w))
    pic = Image.fromarray((arr * 255 + 0.5).astype(np.uint8), mode="L")
    return pic.resize((width, height), Image.Resampling.LANCZOS).convert("RGB")


def grid_image(record: SweepRecord, images: list[np.ndarray | None], cell_px: int = 192,
               metric: str | None = None) -> Image.Image:
    """The labelled grid: ``images`` are the cells' images in cell order (None: no image)."""
    sweep = record.sweep
    nx, ny, nz = sweep.shape
    axes = sweep.axes
    aspect = 1.0
    for im in images:
        if im is not None:
            aspect = im.shape[0] / im.shape[1]
            break
    cell_h = max(1, round(cell_px * aspect))
    font, small, big = _font(14), _font(12), _font(16)
    caption_h = 48
    pad = 6
    row_label_w = 0 if ny == 1 and len(axes) < 2 else 120
    header_h = 24
    title_h = 30
    block_title_h = 26 if nz > 1 else 0
    block_h = block_title_h + header_h + ny * (cell_h + caption_h + pad)
    width = row_label_w + nx * (cell_px + pad) + pad
    height = title_h + nz * (block_h + pad) + pad
    canvas = Image.new("RGB", (max(width, 360), height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    names = ["x", "y", "z"]
    title = "   ".join(f"{names[k]}: {a.name}" for k, a in enumerate(axes))
    head = [f"Sweep {record.id}" if record.id else "Sweep", title]
    if sweep.axis("seed") is None:
        head.append(f"seed {sweep.seed}")
    draw.text((pad, 7), "  ·  ".join(head), fill=TEXT, font=big)
    for iz in range(nz):
        top = title_h + iz * (block_h + pad)
        if nz > 1:
            draw.text((pad, top + 4), f"{axes[2].name} = {axes[2].labels[iz]}", fill=TEXT, font=big)
        for ix in range(nx):
            label = axes[0].labels[ix]
            x0 = row_label_w + pad + ix * (cell_px + pad)
            draw.text((x0 + 2, top + block_title_h + 4), f"{axes[0].name} = {label}"
                      if len(label) < 14 else label, fill=TEXT, font=font)
        for iy in range(ny):
            y0 = top + block_title_h + header_h + iy * (cell_h + caption_h + pad)
            if row_label_w:
                text = (f"{axes[1].name}\n= {axes[1].labels[iy]}" if len(axes) > 1 else "")
                draw.multiline_text((pad, y0 + cell_h // 2 - 14), text, fill=TEXT, font=font)
            for ix in range(nx):
                index = (iz * ny + iy) * nx + ix
                cell = record.cells[index]
                x0 = row_label_w + pad + ix * (cell_px + pad)
                image = images[index] if index < len(images) else None
                if image is not None:
                    canvas.paste(_cell_picture(image, cell_px), (x0, y0))
                    figures = metric_text(cell.metrics, metric).split(" · ")
                    lines = [" · ".join(figures[:2]), " · ".join(figures[2:])]
                    draw.text((x0 + 2, y0 + cell_h + 3), lines[0], fill=TEXT, font=small)
                    draw.text((x0 + 2, y0 + cell_h + 17), lines[1], fill=TEXT, font=small)
                    draw.text((x0 + 2, y0 + cell_h + 31), f"#{index + 1} · seed {cell.seed}",
                              fill=DIM, font=small)
                else:
                    draw.rectangle([x0, y0, x0 + cell_px - 1, y0 + cell_h - 1], fill=MISSING)
                    why = {"failed": "failed", "pending": "not run"}.get(cell.status, cell.status)
                    draw.text((x0 + 8, y0 + cell_h // 2 - 8), why, fill=TEXT, font=font)
                    if cell.error:
                        draw.text((x0 + 2, y0 + cell_h + 3), cell.error[:40], fill=DIM,
                                  font=small)
    return canvas


def csv_rows(record: SweepRecord, files: list[str | None] | None = None) -> list[dict]:
    """One row per cell: place, axis values, status, effective parameters, every metric."""
    rows = []
    axis_names = [a.name for a in record.sweep.axes]
    for i, cell in enumerate(record.cells):
        row: dict = {"cell": cell.index + 1, "ix": cell.coords[0], "iy": cell.coords[1],
                     "iz": cell.coords[2]}
        for name in axis_names:
            row[name] = cell.labels.get(name, "")
        row["status"] = cell.status
        for key in PARAMETER_COLUMNS:
            if key in axis_names:  # the axis column says it already
                continue
            value = cell.seed if key == "seed" else cell.parameters.get(key)
            row[key] = "" if value is None else value
        for m in METRICS:
            v = cell.metrics.get(m)
            row[m] = "" if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 6)
        row["seconds"] = "" if cell.seconds is None else cell.seconds
        row["result"] = (files[i] if files and i < len(files) and files[i] else cell.result) or ""
        row["error"] = cell.error or ""
        rows.append(row)
    return rows


def write_csv(path: str | Path, record: SweepRecord, files: list[str | None] | None = None
              ) -> Path:
    rows = csv_rows(record, files)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["cell"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())
    return Path(path)


def write_json(path: str | Path, record: SweepRecord) -> Path:
    write_text(path, json.dumps(record.to_dict(), indent=2) + "\n")
    return Path(path)


def write_grid(path: str | Path, record: SweepRecord, images: list[np.ndarray | None],
               cell_px: int = 192, metric: str | None = None) -> Path:
    picture = grid_image(record, images, cell_px, metric)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)


def export(folder: str | Path, record: SweepRecord, images: list[np.ndarray | None],
           files: list[str | None] | None = None, cell_px: int = 192,
           metric: str | None = None, stem: str = "sweep") -> list[Path]:
    """``<stem>_grid.png``, ``<stem>.csv`` and ``<stem>.json`` in ``folder``; their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_grid(folder / f"{stem}_grid.png", record, images, cell_px, metric),
            write_csv(folder / f"{stem}.csv", record, files),
            write_json(folder / f"{stem}.json", record)]

