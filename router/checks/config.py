"""Settings of the execution checks (the ``checks`` section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChecksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bwrap: str = Field(
        "bwrap", description="the bubblewrap executable (a name on PATH or a path) that isolates "
        "the checks")
    allow_unisolated: bool = Field(
        False, description="run execution checks even where bubblewrap cannot isolate them "
        "(only a separate process and an audit hook then: never on a shared service)")
    memory_bytes: int = Field(
        1 << 30, ge=64 << 20, le=16 << 30, description="address-space limit of a checked program")
    scratch_bytes: int = Field(
        64 << 20, ge=1 << 20, le=1 << 30, description="size of the checked program's scratch "
        "directory (a tmpfs)")
    excerpt_chars: int = Field(
        200, ge=0, le=2000, description="at most this much of a failing check's output goes "
        "back to the client")
