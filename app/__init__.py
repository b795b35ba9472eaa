"""Facial emotion recognition inference service."""
