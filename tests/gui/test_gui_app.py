"""Starting the app: `xraystudio FILE` opens the file, subcommands still work."""

from __future__ import annotations

import pytest

from xraystudio import cli
from xraystudio.gui import app


@pytest.fixture
def launched(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(app, "run_app", lambda argv: calls.append(argv) or 0)
    return calls


def test_a_file_argument_starts_the_app_with_it(launched, tmp_path):
    image = tmp_path / "chest.png"
    image.write_bytes(b"")
    assert cli.main(["-v", str(image)]) == 0
    assert launched == [[str(image)]]


def test_no_argument_starts_the_app(launched):
    assert cli.main([]) == 0
    assert launched == [[]]


def test_unknown_word_is_still_an_error(launched, capsys):
    with pytest.raises(SystemExit):
        cli.main(["inspcet"])
    assert launched == []


def test_signal_emit_keeps_reference_counts(qapp):
    """PySide6 6.12.0 drops a reference to True on every emit: the app aborts after a while."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Source(QObject):
        moved = Signal(float, float)

    source = Source()
    source.moved.connect(lambda x, y: None)
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(500):
        source.moved.emit(1.0, 2.0)
    assert (sys.getrefcount(True), sys.getrefcount(None)) == before
