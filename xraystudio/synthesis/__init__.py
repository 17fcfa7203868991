"""Mask-conditioned synthesis: model folders, conditions, the diffusers pipelines and the engine.

torch and diffusers are imported inside the functions that need them, so importing this package
(as the GUI does at start-up) stays cheap.
"""
