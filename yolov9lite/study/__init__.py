"""The paper's experiments: retention, gradients, paired runs, ablations, claims.

Only the notebooks and :mod:`yolov9lite.cli` import it.
"""
