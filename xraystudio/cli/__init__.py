"""The ``xraystudio`` command: the GUI by default, subcommands for headless work.

Each subcommand lives in its own module of this package (``<name>_cmd``) and exposes ``register(subparsers)``,
which adds a parser whose ``func(args) -> int`` does the work. Errors derived from
``XRayStudioError`` become one ``error: ...`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from xraystudio import __version__
from xraystudio.errors import XRayStudioError

# Modules under xraystudio.cli, each adding one subcommand, in the order shown by --help.
SUBCOMMANDS: tuple[str, ...] = (
    "inspect_cmd",
    "convert_cmd",
    "generate_cmd",
    "sweep_cmd",
    "train_cmd",
    "evaluate_cmd",
    "segment_cmd",
    "train_segmenter_cmd",
    "fit_layout_cmd",
    "fit_variation_cmd",
    "synthesize_cmd",
    "export_cmd",
    "benchmark_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xraystudio",
        description="Synthetic chest X-rays from segmentation masks. Without a subcommand the "
        "desktop app starts.",
    )
    parser.add_argument("--version", action="version", version=f"xraystudio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"xraystudio.cli.{name}").register(sub)
    return parser


def _opens_files(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """True for ``xraystudio FILE ...``: the first word is an existing path, not a subcommand."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None:
        return False
    commands = next(a.choices for a in parser._actions  # noqa: SLF001 (argparse has no API)
                    if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return first not in commands and Path(first).exists()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if _opens_files(parser, argv):
        # Keep argparse from reading the file name as a subcommand; the app parses its files.
        verbose = any(a in ("-v", "--verbose") for a in argv)
        argv = [a for a in argv if a not in ("-v", "--verbose")]
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        from xraystudio.gui.app import run_app

        return run_app(argv)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        # The GUI takes optional file arguments and Qt options, which argparse does not know.
        from xraystudio.gui.app import run_app

        return run_app(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args) or 0)
    except XRayStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder that cannot be written, a disk that is full
        where = f"{exc.filename}: " if exc.filename else ""
        logging.getLogger(__name__).info("details", exc_info=True)
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
