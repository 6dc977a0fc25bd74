"""OpenAI's chat-completions format, as tpdoc reads and writes it.

In: a request body (bytes). Out: a ``ChatAsk`` (the question, the document's name, the
``AskOptions``, streaming or not) and the document's data URL, apart so that it can be
let go of once the document is on disk; and, the other way, the JSON shapes of a completion,
of its streamed chunks, of the model list and of errors.

The question is the text of the last user message; the document is the last
``image_url`` or ``file`` part among the user messages (so a conversation that attached
it once and asks again still carries it). ``max_tokens`` / ``max_completion_tokens``
cap the answer; what ``tpdoc ask`` has as options comes in a ``tpdoc`` object; every
other OpenAI field (temperature, ...) is accepted and ignored: answers are greedy.

Errors: ``RequestError`` for a request that is not well formed (400) or too large (413);
``error_status`` maps the library's ``TpdocError``s: bad options or page specs 400 (the
command line's exit code 2), documents that cannot be used 422.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from tpdoc.answering.results import DEFAULT_MAX_NEW_TOKENS, AskOptions
from tpdoc.errors import TpdocError

CLIENT_ERROR = "invalid_request_error"
SERVER_ERROR = "server_error"


class RequestError(TpdocError):
    """A request the server cannot take: ``status`` and OpenAI's ``code`` go with it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# ------------------------------------------------------------------------ requests


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send more than tpdoc reads


class TextPart(_Lenient):
    type: Literal["text"]
    text: StrictStr


class ImageUrl(_Lenient):
    url: StrictStr


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageUrl


class FileRef(_Lenient):
    file_data: StrictStr | None = None
    file_id: StrictStr | None = None
    filename: StrictStr | None = None


class FilePart(_Lenient):
    type: Literal["file"]
    file: FileRef


Part = Annotated[TextPart | ImagePart | FilePart, Field(discriminator="type")]


class UserMessage(_Lenient):
    role: Literal["user"]
    content: StrictStr | list[Part]


class TpdocOptions(BaseModel):
    """``tpdoc ask``'s options, by the names ``AskOptions`` gives them; ``result`` asks
    for the whole ``AnswerResult`` in ``tpdoc_result`` (what ``ask --server`` renders)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pages: str | None = None
    dpi: float | None = None
    max_tiles: int | None = None
    scale: int | None = None
    budget: int | None = None
    max_new_tokens: int | None = None
    all_pages: bool = False
    shortlist: int | None = None
    password: str | None = None
    result: bool = False


class ChatRequest(_Lenient):
    model: StrictStr | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: StrictBool = False
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    n: StrictInt = 1
    tpdoc: TpdocOptions = Field(default_factory=TpdocOptions)


@dataclass(frozen=True)
class ChatAsk:
    """What a chat-completions request asks."""

    question: str
    filename: str | None  # the client's name for the document
    options: AskOptions
    stream: bool
    result: bool  # include tpdoc_result


def parse_chat_request(body: bytes) -> tuple[ChatAsk, str]:
    """A chat-completions body -> what it asks and its document (a data URL);
    ``RequestError`` (400) if it is not one, ``UsageError`` for option values
    ``AskOptions`` refuses."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not UTF-8 or JSON, too deep, a huge int
        raise RequestError(400, "invalid_json", f"the request body is not JSON: {exc}") from None
    request = _validate(ChatRequest, data)
    if request.n != 1:
        raise RequestError(400, "unsupported_parameter", f"n must be 1, got {request.n}")
    users = [
        _validate(UserMessage, m, f"messages.{i}")
        for i, m in enumerate(request.messages)
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    if not users:
        raise RequestError(400, "missing_question", "the request has no user message")
    document, filename = _document(users)
    opts = request.tpdoc
    fields = opts.model_dump(exclude={"result"}, exclude_none=True)
    asked = (opts.max_new_tokens, request.max_completion_tokens, request.max_tokens)
    fields["max_new_tokens"] = next((n for n in asked if n is not None), DEFAULT_MAX_NEW_TOKENS)
    ask = ChatAsk(
        question=_text(users[-1]),
        filename=filename,
        options=AskOptions(**fields),
        stream=request.stream,
        result=opts.result,
    )
    return ask, document


def _validate(model: type[BaseModel], data: Any, where: str = "") -> Any:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in (where, *error["loc"]) if part != "")
        raise RequestError(400, "invalid_request", f"{loc or 'body'}: {error['msg']}") from None


def _text(message: UserMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content if isinstance(part, TextPart))


def _document(users: list[UserMessage]) -> tuple[str, str | None]:
    """The last document part of the user messages: (data URL, file name)."""
    for message in reversed(users):
        if isinstance(message.content, str):
            continue
        parts = [p for p in message.content if not isinstance(p, TextPart)]
        if len(parts) > 1:
            raise RequestError(
                400, "invalid_request", f"a message holds {len(parts)} documents; send one"
            )
        if not parts:
            continue
        (part,) = parts
        if isinstance(part, ImagePart):
            return part.image_url.url, None
        if part.file.file_data is None:
            what = "file_id (uploaded files)" if part.file.file_id else "no file_data"
            raise RequestError(
                400, "invalid_request", f"a file part needs file_data as a data URL; got {what}"
            )
        return part.file.file_data, part.file.filename
    raise RequestError(
        400,
        "missing_document",
        "no document in the user messages: add an image_url part (data:image/png;base64,...) "
        "or a file part with file_data (data:application/pdf;base64,...)",
    )


# ----------------------------------------------------------------------- responses


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(
    ident: str, model: str, answer: str, extra: dict[str, Any], created: int | None = None
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``extra`` holds ``tpdoc`` (and ``tpdoc_result``)."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        **extra,
    }


def chunks(ident: str, model: str, answer: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer: the role, the text, and
    the end (which carries ``extra``)."""
    base = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}

    parts = [chunk({"role": "assistant", "content": ""})]
    if answer:
        parts.append(chunk({"content": answer}))
    parts.append(chunk({}, "stop", **extra))
    return parts


def server_sent_events(objects: list[dict[str, Any]]) -> list[str]:
    """``data: <json>`` events, then ``data: [DONE]``, as OpenAI streams them."""
    events = [f"data: {json.dumps(o, ensure_ascii=False, allow_nan=False)}\n\n" for o in objects]
    return [*events, "data: [DONE]\n\n"]


def model_list(model: str, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "tpdoc"}],
    }


def error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_status(exc: TpdocError) -> tuple[int, str]:
    """HTTP status and OpenAI ``code`` of a refused request."""
    if isinstance(exc, RequestError):
        return exc.status, exc.code
    status = 400 if exc.exit_code == 2 else 422
    return status, _snake(type(exc).__name__.removesuffix("Error")) or "error"


def _snake(name: str) -> str:
    """``EncryptedDocument`` -> ``encrypted_document``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
