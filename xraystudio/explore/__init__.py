"""The conditioning explorer: parameter sweeps and ablations over a study, measured per cell.

``axes`` parses and checks the axes (``conditioning_scale=0.5:1.5:5``, ``layer.heart=on,off``);
``sweep`` enumerates the cells, builds each cell's generation request (ablating mask layers in
mm with the MaskStack API), runs them on the engine with progress and cancel, and measures each
cell; ``grid`` writes the labelled grid PNG, the CSV and the JSON. Qt-free, torch-free at import.
"""
