"""Evaluation: NMS, boxes back to the image, COCO metrics, latency.

Imports the networks, the data pipeline and checkpoints; never training or inference.
"""
