"""One module per resource: parse the request, call ``app.core``, shape the response."""
