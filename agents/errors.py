"""Errors raised by model backends and the model store.

    AgentError
    ├── ModelNotFound        a model file or name is missing: run `smallcode models pull`
    ├── ModelIntegrityError  an assembled model does not match its pinned sha256
    ├── PromptTooLong        the prompt does not fit the model's context window
    └── BackendUnavailable   a remote tier (cloud, stand-in, llama.cpp server) did not answer

Every message is one line that says what to do; none carries a secret.
"""


class AgentError(Exception):
    """Base class of every error in ``agents``."""


class ModelNotFound(AgentError):
    pass


class ModelIntegrityError(AgentError):
    pass


class PromptTooLong(AgentError):
    def __init__(self, prompt_tokens: int, n_ctx: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        super().__init__(
            f"prompt is {prompt_tokens} tokens but the local context window is {n_ctx}: "
            "shorten the prompt, raise local.n_ctx, or send it to the cloud route"
        )


class BackendUnavailable(AgentError):
    pass
