"""The request parameters and the answers of the API, as pydantic models (they make the OpenAPI schema).

Images travel beside the parameters: base64 strings in a JSON body, file parts in a multipart form.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..deploy.subject_ids import RULE, subject_id

Fmr = Field(None, gt=0, lt=1, description="false-match rate of the decision (default: the service's, 1e-3)")
SubjectId = Annotated[
    str,
    Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f/]+$", description=f"a subject id: {RULE}"),
    AfterValidator(subject_id),  # the one rule (deploy/subject_ids.py): normalised, refused with its reason
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Quality = Annotated[
    float | None,
    Field(
        ge=0,
        le=1,
        description="the face's quality in [0, 1] (the norm of a MagFace/AdaFace model, else facelearn's estimate: "
        "stability under small perturbations × sharpness × frontality); null where unavailable",
    ),
]


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aligned: bool = Field(False, description="the images are faces aligned at the model's input size: no detection")


class EmbedParams(Options):
    pass


class VerifyParams(Options):
    subject: str | None = Field(None, min_length=1, max_length=256, description="compare image_a with this subject")
    fmr: float | None = Fmr
    single: bool = Field(False, description="several faces in an image is an error (default: the largest is used)")


class IdentifyParams(Options):
    k: int = Field(5, ge=1, le=100, description="candidates per face")
    fmr: float | None = Fmr
    fpir: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="decide at this false-positive identification rate, from the gallery's own calibration for "
        "its size (facelearn calibrate-gallery) instead of the 1:1 FMR",
    )


class SubjectParams(Options):
    subject: SubjectId
    metadata: dict[str, str | int | FiniteFloat | bool] = Field(default_factory=dict)
    single: bool = Field(False, description="several faces in a photo is an error (default: the largest is enrolled)")


class FacesParams(Options):
    single: bool = False


class FaceFields(BaseModel):
    """Where a face is and how it was found; all null for a face sent aligned."""

    box: list[float] | None = Field(description="x1, y1, x2, y2 in the photo's pixels")
    landmarks: list[list[float]] | None = Field(
        description="five points (x, y) in the photo: the eyes, the nose tip, the mouth corners (each pair left to "
        "right in the image), ArcFace's order"
    )
    detection_score: float | None = Field(description="the detector's confidence")
    quality: Quality


class EmbeddedFace(FaceFields):
    embedding: list[float]
    norm: float = Field(description="the raw embedding norm (a quality score for MagFace-trained models)")
    image: int = Field(0, description="the upload the face is in: its index in images (0 for image)")


class EmbedAnswer(BaseModel):
    model: str
    faces: list[EmbeddedFace]
    no_face: list[int] = Field([], description="the indices in images of the photos without a face")


class Decision(BaseModel):
    threshold: float = Field(description="the cosine threshold of the model's calibration at this FMR")
    fmr: float | None = Field(
        description="the 1:1 false-match rate of the threshold (null: an uncalibrated threshold, or decided at an FPIR)"
    )
    calibrated: bool = Field(True, description="false: the threshold was given, not calibrated")
    model: str


class OpenSetRule(BaseModel):
    fpir: float | None = Field(description="the false-positive identification rate of the threshold (null: at FMR)")
    fusion: str = Field(description="how a subject scored: best (its best face) or mean (its template)")
    gallery_size: int = Field(description="subjects enrolled now")
    calibrated_gallery_size: int | None = Field(description="subjects enrolled when the FPIR threshold was measured")
    warning: str | None = Field(description="set when the gallery has grown past what its FPIR threshold holds for")


class VerifyAnswer(Decision):
    score: float
    same: bool
    subject: str | None
    boxes: list[list[float] | None] = Field(description="each compared face's box (also in faces)")
    faces: list[FaceFields]
    qualities: list[Quality] = Field(description="each compared face's quality, in the order of boxes (also in faces)")


class Candidate(BaseModel):
    subject: str
    score: float


class IdentifiedFace(Decision, OpenSetRule, FaceFields):
    candidates: list[Candidate]
    subject: str | None = Field(description="the best candidate above the threshold, or null: unknown")


class IdentifyAnswer(OpenSetRule):
    faces: list[IdentifiedFace]
    fmr: float | None


class Subject(BaseModel):
    subject: str
    faces: int
    metadata: dict
    qualities: list[Quality] = Field(description="each enrolled face's quality (null where none was kept)")


class SubjectList(BaseModel):
    subjects: list[Subject]


class Refused(BaseModel):
    photo: int = Field(description="the image's index, as no_face has it")
    reasons: list[str] = Field(description='e.g. "blurred", "too small: 18 px between the eyes", "profile"')
    quality: Quality


class EnrolledPhoto(BaseModel):
    photo: int
    quality: Quality


class Enrolled(BaseModel):
    subject: str
    faces: int = Field(description="the subject's faces in the gallery after this call")
    no_face: list[int] = Field(description="indices of the images in which no face was found (not enrolled)")
    refused: list[Refused] = Field(description="faces below the enroll gate (not enrolled), with the reasons")
    enrolled: list[EnrolledPhoto] = Field(description="the faces enrolled by this call, with their quality")


class StoredFace(BaseModel):
    face_id: str = Field(description="the face's id (text): stable while it is enrolled, never given to another face")
    quality: float | None = Field(description="the quality the store kept for the face (null: none kept)")
    source: str | None = Field(description="where the face came from, where the store kept it (bulk enroll)")


class FaceList(BaseModel):
    subject: str
    faces: list[StoredFace] = Field(description="in the order enrolled")


class FaceDeleted(BaseModel):
    subject: str
    deleted_face: str
    faces: int = Field(description="the subject's faces left")
    subject_deleted: bool = Field(description="true: it was the subject's last face; the subject is deleted with it")
    erased: bool  # as for a deleted subject
    erasure: str


class Deleted(BaseModel):
    deleted: str
    faces: int
    erased: bool  # false: committed, but a reader's snapshot still holds the bytes (see erasure)
    erasure: str  # "done", or what the pending erasure waits for


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    model: str
    gallery_size: int
    max_batch: int
    max_wait_ms: float


def request_body(params: type[BaseModel], images: dict[str, bool], required: tuple[str, ...]) -> dict:
    """The OpenAPI request body of a route: the same fields as JSON (base64 images) or as a multipart form; and
    its parameters as query parameters too (``bodies.merge_query``: each in one place only)."""
    base = params.model_json_schema()
    schemas = {}
    for kind, image in (
        ("application/json", {"type": "string", "format": "byte"}),
        ("multipart/form-data", {"type": "string", "format": "binary"}),
    ):
        properties = dict(base.get("properties", {}))
        if kind == "multipart/form-data" and "metadata" in properties:
            properties["metadata"] = {"type": "string", "description": "a JSON object"}
        for name, many in images.items():
            properties[name] = {"type": "array", "items": image, "minItems": 1} if many else image
        schema = {"type": "object", "properties": properties, "required": [*base.get("required", []), *required]}
        if kind == "application/json":
            schema["additionalProperties"] = False
        schemas[kind] = {"schema": schema}
    query = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {k: v for k, v in schema.items() if k != "description"},
            "description": schema.get("description", "")
            + (" (a JSON object)" if name == "metadata" else "")
            + "; or in the body, not both",
        }
        for name, schema in base.get("properties", {}).items()
    ]
    return {"requestBody": {"required": True, "content": schemas}, "parameters": query}
