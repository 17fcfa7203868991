"""Keeps the bottom dock area as tall as the tab it shows.

The results strip and the gallery share one tabbed dock area, and Qt holds such an area at the
largest minimum height of its tabs. The gallery (a list beside a preview) asked for 388 px, so
under the strip, one row of thumbnails, a third of the window was blank grey taken from the
canvas. The gallery now scrolls when short; raising the strip shrinks the area to the strip
(a taller strip shows nothing more: its thumbnails have one size), and raising the gallery grows
the area to a share of the window (never shrinks it: a user who dragged it taller keeps that).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

#: Least share of the window's height the gallery gets when it is raised: at 0.45 of a 950 px
#: window its list, preview, note and key hints fit without scrolling.
GALLERY_SHARE = 0.45


class BottomDockSizer(QObject):
    """Resizes the tabbed bottom docks of ``window`` whenever one of them is raised."""

    def __init__(self, window: QMainWindow, strip: QDockWidget, gallery: QDockWidget) -> None:
        super().__init__(window)
        self._window, self._strip, self._gallery = window, strip, gallery
        # Deferred one event-loop turn: the signal comes while Qt is still switching the tabs.
        strip.visibilityChanged.connect(
            lambda shown: shown and QTimer.singleShot(0, self, self.fit_strip))
        gallery.visibilityChanged.connect(
            lambda shown: shown and QTimer.singleShot(0, self, self.fit_gallery))

    def fit(self) -> None:
        """Fit the area to whichever of the two is raised (after a restored layout, say)."""
        if _raised(self._gallery):
            self.fit_gallery()
        else:
            self.fit_strip()

    def fit_strip(self) -> None:
        if _docked(self._strip):
            self._window.resizeDocks([self._strip], [self._strip.minimumSizeHint().height()],
                                     Qt.Orientation.Vertical)

    def fit_gallery(self) -> None:
        want = int(self._window.height() * GALLERY_SHARE)
        if _docked(self._gallery) and self._gallery.height() < want:
            self._window.resizeDocks([self._gallery], [want], Qt.Orientation.Vertical)


def scrolling(widget: QWidget, horizontal: bool = True) -> QScrollArea:
    """``widget`` in a frameless scroll area: a dock that scrolls when it is short instead of
    squeezing its rows, and that does not hold the dock area at its own full height."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    if not horizontal:
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(widget)
    return scroll


def _docked(dock: QDockWidget) -> bool:
    return dock.isVisible() and not dock.isFloating()


def _raised(dock: QDockWidget) -> bool:
    return _docked(dock) and not dock.visibleRegion().isEmpty()
