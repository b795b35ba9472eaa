"""HTTP throughput benchmark: the batching service against a naive ``model.predict`` baseline.

    python -m bench.load [--model models/emotion_cnn.h5] [--requests 2000] [--concurrency 1,8,32,64]

See ``python -m bench.load --help`` and BENCHMARKS.md.
"""
