"""Dock panels around the canvas: layers, nodules, generation, results."""
