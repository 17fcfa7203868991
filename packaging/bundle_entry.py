"""Entry point of the PyInstaller bundle: the ``xraystudio`` command (window by default)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # The generation and segmentation engines run in spawned processes: a frozen executable
    # must recognise it is being started as one of them.
    multiprocessing.freeze_support()
    from xraystudio.cli import main

    sys.exit(main())
