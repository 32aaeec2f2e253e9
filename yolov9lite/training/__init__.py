"""Training: assigner, loss, optimizer, the reference step, the engine, the run.

Never imports :mod:`yolov9lite.inference` (nor the other way round).
"""
