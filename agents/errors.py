"""Errors raised by model backends and the model store.

    AgentError
    ├── ModelNotFound          a model file or name is missing: run `smallcode models pull`
    ├── ModelIntegrityError    an assembled model does not match its pinned sha256
    ├── PromptTooLong          the prompt does not fit a model's context window (local or cloud)
    ├── RequestRefused         a remote tier refused this request as invalid (not for its length)
    ├── FimUnsupported         the model (or its server) cannot fill in the middle
    ├── ToolsUnsupported       the model (or its server) cannot take a tool turn: send it to the cloud
    └── BackendUnavailable     a remote tier (cloud, stand-in, llama.cpp server) did not answer
        ├── BackendTimeout        it did not answer within its timeout
        ├── BackendRateLimited    its provider refuses for now (rate or token limits): retry later
        ├── BackendMisconfigured  it refused the configured key or model name: the operator fixes it
        ├── CircuitOpen           not called at all: its last calls failed (agents.breaker)
        └── LocalUnavailable      the local tier did not answer and the task may not go elsewhere

Every message is one line that says what to do; none carries a secret.
"""


class AgentError(Exception):
    """Base class of every error in ``agents``."""


class ModelNotFound(AgentError):
    pass


class ModelIntegrityError(AgentError):
    pass


class PromptTooLong(AgentError):
    """``prompt_tokens`` or ``n_ctx`` is None where the tier did not say (a provider's refusal)."""

    def __init__(self, prompt_tokens: int | None, n_ctx: int | None, *,
                 tier: str = "local") -> None:
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        self.tier = tier
        if tier == "local":
            advice = "shorten the prompt, raise local.n_ctx, or send it to the cloud route"
        else:
            advice = "shorten the prompt or attach fewer files"
        if prompt_tokens is not None and n_ctx is not None:
            what = f"prompt is {prompt_tokens} tokens but the {tier} context window is {n_ctx}"
        else:
            known = f" ({n_ctx} tokens)" if n_ctx is not None else ""
            what = f"prompt is longer than the {tier} model's context window{known}"
        super().__init__(f"{what}: {advice}")


class RequestRefused(AgentError):
    pass


class FimUnsupported(AgentError):
    """Inline completion with a suffix on a model whose tokenizer has no FIM tokens, or on a
    server without llama.cpp's ``/infill``."""


class ToolsUnsupported(AgentError):
    """A tool turn (``GenerationRequest.uses_tools``) sent to a backend whose
    ``supports_tools`` is False: the in-process model, or a server that is not llama.cpp's
    llama-server with ``--jinja``. Raised before any token; the router sends such turns to the
    cloud with reason ``tools`` (or refuses them where they may not leave the machine)."""


class BackendUnavailable(AgentError):
    pass


class BackendTimeout(BackendUnavailable):
    pass


class BackendRateLimited(BackendUnavailable):
    pass


class BackendMisconfigured(BackendUnavailable):
    pass


class LocalUnavailable(BackendUnavailable):
    """The local tier (its llama-server) did not answer, and the task may not go to the cloud
    (privacy, a forced local route, or the policy's ``local_unavailable: refuse``)."""


class CircuitOpen(BackendUnavailable):
    """The tier's circuit breaker is open: no call went out. ``retry_after_s``: the next probe."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
