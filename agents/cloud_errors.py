"""litellm's exceptions, each turned into one of ours with a message that says what to do.

Decided by exception type, never by message text. The order matters: litellm's
``ContextWindowExceededError`` and ``ContentPolicyViolationError`` are ``BadRequestError``s,
and a ``Timeout`` is an ``APIConnectionError`` in openai's tree. litellm wraps some transport
failures in other types (a refused connection arrives as an ``InternalServerError``), so
timeouts and unreachable hosts are recognised by the types along the exception's cause chain.
No provider message is copied: it may echo the request, or a key.
"""

from __future__ import annotations

from typing import Any

import httpx

from agents.config import CloudConfig
from agents.errors import (
    AgentError,
    BackendMisconfigured,
    BackendRateLimited,
    BackendTimeout,
    BackendUnavailable,
    PromptTooLong,
    RequestRefused,
)


def translate(exc: BaseException, litellm: Any, config: CloudConfig,
              n_ctx: int | None) -> AgentError:
    model, kind = config.model, type(exc).__name__
    where = config.api_base or "the provider's default URL"
    if isinstance(exc, litellm.ContextWindowExceededError):
        return PromptTooLong(None, n_ctx, tier="cloud")
    if isinstance(exc, litellm.RateLimitError):
        return BackendRateLimited(
            f"cloud model {model} is rate-limited by its provider ({kind}): retry later")
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
        return BackendMisconfigured(
            f"the cloud provider refused the API key for {model} ({kind}): the operator "
            "sets a valid one in SMALLCODE_CLOUD__API_KEY")
    if isinstance(exc, litellm.NotFoundError):
        return BackendMisconfigured(
            f"the cloud provider at {where} does not serve model {model} ({kind}): check "
            "cloud.model")
    if cause := _caused_by(exc, litellm.Timeout | httpx.TimeoutException | TimeoutError):
        return BackendTimeout(
            f"cloud model {model} did not answer within cloud.timeout_s={config.timeout_s:g} s "
            f"({type(cause).__name__}): retry, ask for fewer max_tokens, or raise "
            "cloud.timeout_s")
    if cause := _caused_by(exc, litellm.APIConnectionError | httpx.TransportError
                           | ConnectionError):
        return BackendUnavailable(
            f"cannot reach cloud model {model} at {where} ({type(cause).__name__}): check "
            "cloud.api_base, or start the stand-in (`smallcode standin`)")
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return RequestRefused(
            f"cloud model {model} refused the request under its content policy ({kind})")
    if isinstance(exc, litellm.BadRequestError | litellm.UnprocessableEntityError):
        return RequestRefused(
            f"cloud model {model} refused the request as invalid ({kind}): check its "
            "parameters (stop, temperature, max_tokens)")
    return BackendUnavailable(
        f"cloud model {model} failed ({kind}); its provider may be down: retry later")


def _caused_by(exc: BaseException, types: Any) -> BaseException | None:
    """The first of the exception and its causes (then their causes) that is one of ``types``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, types):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
