"""The engine: generation, segmentation and sweeps in a child process of their own (no Qt).

``protocol`` names what travels between the window and the process (jobs, results, typed
events), ``shared`` the shared-memory blocks that carry big arrays, ``server`` the child
process's loop (a table from job type to handler, one failure path), ``client`` the parent's
handle on the process. The handlers live in ``generation``, ``segmentation`` and ``sweep``;
``edit_results`` and ``pixels`` serve both sides (metrics and previews in the process, saving
and display words in the window), ``opening`` reads a study as the window opens it. The child
process imports this package and the core, never ``xraystudio.gui``.
"""
