"""Deployment: a trained run as a model that takes raw inputs (graph.py), exported to ONNX or
torch.export files that need nothing from trainlab (export.py), predictions on raw files
(inputs.py, predictor.py) and an HTTP prediction server (server.py).

Layers inside: server > predictor > export > graph; inputs reads files into the arrays the
graph's input spec describes and imports only numpy, Pillow and pandas.
"""
