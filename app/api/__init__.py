"""The HTTP layer: routes, dependencies, schemas, error handlers, middleware (FastAPI and Starlette)."""
