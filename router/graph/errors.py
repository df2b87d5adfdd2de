"""Errors the router raises for a task it will not run. Nothing is spent before they fire.

    RouterError
    ├── InvalidTask       bad input; ``field`` names the request field (HTTP 400)
    └── PolicyViolation   the team's policy forbids what was asked (HTTP 403)
"""


class RouterError(Exception):
    pass


class InvalidTask(RouterError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class PolicyViolation(RouterError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")
