"""Compression of a trained run (`trainlab compress`): pruning, quantization and distillation, each
making a new run directory linked to its parent (child.py) that every other command takes like
any run, and a side-by-side comparison of the parent and its children.
"""
