"""``xraystudio export PROJECT --format nnunet|jsrt|dicom --out DIR``: the accepted results."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a project's accepted results as a dataset or DICOM",
        description="Writes the accepted results of PROJECT to DIR: nnunet (nnU-Net v2 raw "
        "dataset), jsrt (the layout `xraystudio train` reads) or dicom (Secondary Capture + "
        "SEG per image). De-identified unless --keep-link; every image is marked synthetic.",
    )
    p.add_argument("project", help="project folder")
    p.add_argument("--format", required=True, choices=("nnunet", "jsrt", "dicom"))
    p.add_argument("--out", required=True, help="output folder (must not exist, unless --force)")
    p.add_argument("--keep-link", action="store_true",
                   help="keep the patient identity, source file names, notes and (DICOM) a "
                   "reference to the source image")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from xraystudio.curation.export import export_project
    from xraystudio.curation.project import Project

    exported = 0
    with Project.open(args.project, read_only=True) as project, tqdm(
        unit="img", disable=not sys.stderr.isatty(), dynamic_ncols=True,
        desc=f"export {args.format}",
    ) as bar:

        def progress(done: int, total: int) -> None:
            nonlocal exported
            exported, bar.total = done, total
            bar.update(done - bar.n)

        out = export_project(project, args.out, args.format, keep_link=args.keep_link,
                             overwrite=args.force, progress=progress)
    print(f"{out}: {exported} accepted images "
          f"({args.format}{', linked to sources' if args.keep_link else ', de-identified'})")
    return 0
