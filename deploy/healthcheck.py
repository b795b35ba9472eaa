"""Container health probe: exit 0 when GET /ready answers 200 (the model is loaded and warm), else 1.

Used by the Dockerfile's HEALTHCHECK and docker-compose.yml; it needs only the standard library (the
slim image has no curl). It probes the port the service listens on (EMOTION_PORT, 8000 by default).
"""

import os
import sys
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('EMOTION_PORT', '8000')}/ready"
try:
    with urllib.request.urlopen(url, timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # URLError, HTTPError (503 while loading), timeouts
    print(f"not ready: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
