"""The networks: blocks, GELAN, PGI, head, model zoo, deployment, counts.

Imports only :mod:`yolov9lite.utils`; never the data pipeline.
"""
