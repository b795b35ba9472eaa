"""Offline training of the emotion CNNs: ``python -m training --help``."""
