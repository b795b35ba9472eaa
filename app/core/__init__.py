"""The domain: images, faces, preprocessing, the model and its batcher. No web framework in here.

``training`` and ``app.api`` both build on this package; it imports neither of them.
"""
