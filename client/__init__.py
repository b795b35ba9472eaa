"""``emotion-client``: the service's command-line client (httpx; it never imports TensorFlow or ``app``)."""
