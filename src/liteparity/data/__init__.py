"""Stage 0, data: datasets (``.npz``, ``.npy``, CSV, image folders, arrays) read in row blocks,
bound to a model's inputs, split into seeded calibration and evaluation rows.

May import: ``errors`` and ``specs`` only (numpy, PIL).
"""
