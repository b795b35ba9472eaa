"""What the OpenAPI schema says that FastAPI cannot infer: the description, error answers, upload bodies."""

from typing import Any

from pydantic import BaseModel

from app.api.schemas import ErrorResponse

DESCRIPTION = """
Upload a face photo, get the probability of each of seven emotions
(anger, contempt, disgust, fear, happy, sadness, surprise).

Faces are found with OpenCV; the largest is classified unless `faces=all` or `faces=off` is asked.
Images go up as multipart files, or as JSON with their bytes in base64 (`{"b64": ...}`;
`{"instances": [...]}` for a batch). Several models may be served: `GET /models`, `?model=NAME`.
Errors are JSON `{"error": {"code", "message", "request_id"}}` with a stable `code`.
"""

# The part's declared type is documentation only: the format is sniffed from the bytes.
IMAGE_MEDIA_TYPES = "image/jpeg, image/png, image/gif, image/webp, image/bmp, image/tiff"
# The error statuses an upload route can answer (see the README's error table).
UPLOAD_ERRORS = (400, 401, 404, 408, 413, 415, 422, 503)


def error_responses(*statuses: int, json_route: bool = True) -> dict[int | str, dict[str, Any]]:
    """The JSON error answers of a route. A route whose own answer is not JSON (``json_route=False``:
    /annotate's JPEG) names the JSON content itself, since FastAPI would file the error model under the
    route's media type; it refers to the ``ErrorResponse`` schema the JSON routes register."""
    response: dict[str, Any] = {"model": ErrorResponse, "description": "Error with a stable code"}
    if not json_route:
        schema = {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}
        response = {
            "description": response["description"],
            "content": {"application/json": {"schema": schema}},
        }
    return {status: response for status in statuses}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place (a request body FastAPI does not see)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def multipart_body(
    *, max_files: int | None = None, json_schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``openapi_extra`` of an upload route: one ``file`` field, or up to ``max_files`` of them; and,
    with ``json_schema``, the JSON body the route takes too (``Content-Type: application/json``)."""
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    if max_files is not None:
        file_schema = {"type": "array", "items": file_schema, "minItems": 1, "maxItems": max_files}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": file_schema},
                        "additionalProperties": False,  # other fields: 422 unexpected_field
                    },
                    "encoding": {"file": {"contentType": IMAGE_MEDIA_TYPES}},
                },
                **({} if json_schema is None else {"application/json": {"schema": json_schema}}),
            },
        }
    }


def jpeg_response(description: str, *, headers: dict[str, str]) -> dict[str, Any]:
    """A 200 answer that is a JPEG image, with the response ``headers`` (name: description) it carries."""
    return {
        "description": description,
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        },
    }
