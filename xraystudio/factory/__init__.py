"""The data factory: many synthetic radiographs, resumable, sharded, in the nnU-Net v2 layout.

``items`` turns the inputs and settings into a fixed list of work items grouped in batches
(units); ``output`` owns the output folder (fingerprint, one atomic file set per item, the
finished dataset); ``worker`` makes the images of one unit; ``run`` drives the units in one
process, in each process of an ``accelerate launch``, or in Ray actors.
"""
