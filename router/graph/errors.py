"""Errors the router raises for a task it will not run. Nothing is spent before they fire.

    RouterError
    ├── InvalidTask       bad input; ``field`` names the request field (HTTP 400)
    │   └── TaskTooLarge  the task fits no window it may go to (HTTP 400, context_length_exceeded)
    ├── PolicyViolation   the team's policy forbids what was asked (HTTP 403)
    └── BudgetExceeded    the cloud call would go over the key's budget (HTTP 429, Retry-After)

    TaskCancelled         not a refusal: a run stopped midway (a cancelled task, a client that
                          left, a stopping worker); raised in the graph's thread
"""


class RouterError(Exception):
    pass


class InvalidTask(RouterError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class TaskTooLarge(InvalidTask):
    def __init__(self, prompt_tokens: int, *, max_tokens: int, local_window: int,
                 cloud_window: int, forced: bool) -> None:
        self.prompt_tokens = prompt_tokens
        if forced:
            windows = f"the cloud model's context window is {cloud_window} tokens"
        else:
            windows = (f"it fits neither the local context window ({local_window} tokens, "
                       f"{max_tokens} of them kept for the answer) nor the cloud model's "
                       f"({cloud_window} tokens)")
        super().__init__("prompt", f"the task is {prompt_tokens} tokens and {windows}: "
                         "shorten it or attach fewer files")


class PolicyViolation(RouterError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class BudgetExceeded(RouterError):
    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__("this key's cloud budget for the period is spent: the task needs the "
                         f"cloud; try again in {retry_after_s} s, or ask for a larger budget")


class TaskCancelled(Exception):
    """Raised in the graph's thread when the task was cancelled or the worker is stopping.
    ``tokens``: what the tier that stopped had streamed by then (a cloud call's partial
    spend is priced from it)."""

    def __init__(self, tokens: int = 0) -> None:
        super().__init__("the task was cancelled")
        self.tokens = tokens
