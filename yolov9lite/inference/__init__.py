"""Inference: predict on images and videos, sources, results, export.

Never imports :mod:`yolov9lite.training` (nor the other way round).
"""
