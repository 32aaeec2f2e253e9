"""Checkpoints: our format, and official .pt files read without executing them.

Imports :mod:`yolov9lite.nn` (to build models) and :mod:`yolov9lite.utils`.
"""
