"""Figures: one style and save helper, run plots, notebook parameters.

Imports :mod:`yolov9lite.data` (drawing a batch) and :mod:`yolov9lite.utils`.
"""
