"""The tabbed bottom docks take only the height of the tab on top, so the canvas keeps the rest."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget

from xraystudio.gui.dock_sizes import GALLERY_SHARE


def test_the_results_strip_leaves_the_height_to_the_canvas_and_the_gallery_gets_room(qtbot, window):
    window.resize(1440, 1000)
    results = window.findChild(QDockWidget, "resultsDock")
    strip_height = results.minimumSizeHint().height()
    # Before, the area took the gallery's height under the strip too: 388 px, 228 of them blank,
    # and the canvas had 40 % of the window.
    qtbot.waitUntil(lambda: window.height() == 1000 and results.height() <= strip_height + 2
                    and window.canvas.height() > 0.6 * window.height(), timeout=3000)
    tall_canvas = window.canvas.height()

    window.show_gallery()
    share = int(GALLERY_SHARE * window.height())
    # The share is the area's, tab bar included.
    qtbot.waitUntil(lambda: window.gallery_dock.height() >= share - 40, timeout=3000)
    assert window.canvas.height() < tall_canvas - (share - 40 - strip_height) + 10

    results.raise_()
    qtbot.waitUntil(lambda: results.height() <= strip_height + 2
                    and window.canvas.height() == tall_canvas, timeout=3000)
