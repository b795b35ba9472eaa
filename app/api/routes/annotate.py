"""POST /annotate: one image in, the same image back as JPEG with a box and label over each face."""

from fastapi import APIRouter, Request, Response

from app.api.deps import FacesOption, ModelOption, Service, api_key_dependencies
from app.api.openapi import UPLOAD_ERRORS, error_responses, jpeg_response, multipart_body
from app.api.uploads import MULTIPART, read_one_file, single_upload_limit
from app.core.config import Settings

ANNOTATE = "/annotate"
# Response headers: what the JSON of /predict says, for a client that gets pixels back.
MODEL_ID_HEADER = "X-Model-Id"
MODEL_NAME_HEADER = "X-Model-Name"
FACE_COUNT_HEADER = "X-Face-Count"


class JPEGResponse(Response):
    media_type = "image/jpeg"


async def annotate(
    request: Request, service: Service, faces: FacesOption = None, model: ModelOption = None
) -> JPEGResponse:
    settings = service.settings
    served = service.require_model(model)
    data = await read_one_file(request, max_file_bytes=settings.max_upload_bytes)
    annotated = await served.classifier.annotate(data, faces or settings.face_detection)
    result = annotated.classification
    service.metrics.record(served.name, result)
    headers = {
        MODEL_ID_HEADER: result.model_id,
        MODEL_NAME_HEADER: served.name,
        FACE_COUNT_HEADER: str(len(result.faces) if result.face_found else 0),
    }
    return JPEGResponse(annotated.jpeg, headers=headers)


def add_routes(router: APIRouter, settings: Settings) -> None:
    router.add_api_route(
        ANNOTATE,
        annotate,
        methods=["POST"],
        tags=["predict"],
        dependencies=api_key_dependencies(settings),
        openapi_extra=multipart_body(),
        response_class=JPEGResponse,
        responses={
            200: jpeg_response(
                "The image, upright, with a box and a label (emotion and probability) over each face "
                "classified; with no face found, the label of the whole image in the top left corner",
                headers={
                    MODEL_ID_HEADER: "The model that answered (as `model_id` in /predict)",
                    MODEL_NAME_HEADER: "Its name (as `model` in /predict and `?model=`)",
                    FACE_COUNT_HEADER: "Faces drawn (0: no face found, the whole image was classified)",
                },
            ),
            **error_responses(*UPLOAD_ERRORS, json_route=False),
        },
        summary="The image back as JPEG with each face's box and emotion drawn",
    )


def body_limits(settings: Settings) -> dict[str, dict[str, int]]:
    """The most bytes a request body may hold (for BodyLimitMiddleware): one file, as /predict."""
    return {ANNOTATE: {MULTIPART: single_upload_limit(settings.max_upload_bytes)}}
