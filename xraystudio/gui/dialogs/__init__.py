"""Dialogs of the window that carry their own logic (restore, export)."""
