"""xraystudio: synthetic chest X-rays from segmentation masks.

The core (everything outside ``xraystudio.gui``) imports no Qt, and heavy libraries (torch,
diffusers) are imported lazily inside the functions that need them so that the window opens fast.
"""

__version__ = "0.1.0"
