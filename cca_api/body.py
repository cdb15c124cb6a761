"""Read and validate request input into pydantic models, with errors that name the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar

from flask import Request
from pydantic import BaseModel, ValidationError

from cca_core.errors import BadRequest, Invalid, UnsupportedMedia, field_path, plain_message
from cca_core.infra.pgsafe import nul_path

Model = TypeVar("Model", bound=BaseModel)


def parse_json(request: Request, model: type[Model]) -> Model:
    """Validate a JSON body. Raises UnsupportedMedia, BadRequest or Invalid; the body size
    limit is enforced by Flask (``MAX_CONTENT_LENGTH``) before this runs."""
    if request.mimetype != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    try:
        data = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    refuse_nul(data)
    return validate(model, data)


def parse_query(request: Request, model: type[Model]) -> Model:
    """Validate query parameters (each given once)."""
    params = request.args.to_dict()
    refuse_nul(params)
    return validate(model, params)


def refuse_nul(data: Mapping[str, object]) -> None:
    """Raise Invalid naming the field that holds a NUL character: Postgres stores none, and
    no argv can carry one."""
    if (field := nul_path(data)) is not None:
        raise Invalid(f"{field}: must not contain the NUL character (\\u0000)", field=field)


def validate(model: type[Model], data: Mapping[str, object]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(first["loc"]) or None
        message = plain_message(first)
        raise Invalid(f"{field}: {message}" if field else message, field=field) from None
