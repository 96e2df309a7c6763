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


class SubjectParams(Options):
    subject: SubjectId
    metadata: dict[str, str | int | FiniteFloat | bool] = Field(default_factory=dict)
    single: bool = Field(False, description="several faces in a photo is an error (default: the largest is enrolled)")


class FacesParams(Options):
    single: bool = False


class EmbeddedFace(BaseModel):
    box: list[float] | None
    embedding: list[float]
    norm: float = Field(description="the raw embedding norm (a quality score for MagFace-trained models)")
    quality: Quality


class EmbedAnswer(BaseModel):
    model: str
    faces: list[EmbeddedFace]


class Decision(BaseModel):
    threshold: float = Field(description="the cosine threshold of the model's calibration at this FMR")
    fmr: float
    model: str


class VerifyAnswer(Decision):
    score: float
    same: bool
    subject: str | None
    boxes: list[list[float] | None]
    qualities: list[Quality] = Field(description="each compared face's quality, in the order of boxes")


class Candidate(BaseModel):
    subject: str
    score: float


class IdentifiedFace(Decision):
    box: list[float] | None
    candidates: list[Candidate]
    subject: str | None = Field(description="the best candidate above the threshold, or null: unknown")
    quality: Quality


class IdentifyAnswer(BaseModel):
    faces: list[IdentifiedFace]
    gallery_size: int


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


class EnrolledFace(BaseModel):
    photo: int
    quality: Quality


class Enrolled(BaseModel):
    subject: str
    faces: int = Field(description="the subject's faces in the gallery after this call")
    no_face: list[int] = Field(description="indices of the images in which no face was found (not enrolled)")
    refused: list[Refused] = Field(description="faces below the enroll gate (not enrolled), with the reasons")
    enrolled: list[EnrolledFace] = Field(description="the faces enrolled by this call, with their quality")


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
    """The OpenAPI request body of a route: the same fields as JSON (base64 images) or as a multipart form."""
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
    return {"requestBody": {"required": True, "content": schemas}}
