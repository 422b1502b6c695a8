"""Shared core of the fingerprinting system: media decoding, types, storage and the CLI.

Stages (``audio/``, ``visual/``, ``fusion/``) import from here; this package imports no stage
except in :mod:`fingerprint.cli`, which wires the stages together.
"""
__version__ = "0.1.0"
