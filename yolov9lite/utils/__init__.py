"""Helpers every layer may use: boxes, devices, speed, safe pickles, outputs.

The ground floor: it imports no other folder of the package. The library's one error for bad
input (:class:`~yolov9lite.utils.errors.InputError`) lives here.
"""
