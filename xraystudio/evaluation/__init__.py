"""Measuring generated radiographs against the real ones they were conditioned on."""
