"""Settings of inline completion, ``POST /v1/completions`` (the ``completions`` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CompletionsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix_tokens: int = Field(
        1024, ge=16, le=131072, description="most tokens of code before the cursor sent to the "
        "model: whole lines nearest the cursor (the rest is dropped)")
    suffix_tokens: int = Field(
        256, ge=0, le=131072, description="most tokens of code after the cursor sent to the model")
    max_tokens: int = Field(
        256, ge=1, le=4096, description="largest max_tokens a completion request may ask for")
    default_max_tokens: int = Field(
        64, ge=1, le=4096, description="max_tokens of a request that gives none")
    stop_at_block_end: bool = Field(
        True, description="stop at a blank line after code, a line less indented than the "
        "cursor's block, or a line that repeats the code after the cursor")
    fim_order: Literal["psm", "spm"] = Field(
        "psm", description="FIM layout of the in-process model: psm (prefix, suffix, middle: "
        "as the Qwen coders were trained) or spm (suffix first: edits at the cursor keep the "
        "whole suffix in the KV cache; see BENCHMARKS.md)")
    reuse_min_tokens: int = Field(
        16, ge=0, le=4096, description="keep cached runs of at least this many prompt tokens "
        "past the common prefix, moved to where the edited prompt has them, so a keystroke "
        "evaluates only what changed (0: the common prefix only; see BENCHMARKS.md)")
    reuse_refresh_tokens: int = Field(
        8, ge=0, le=4096, description="with reuse_min_tokens, evaluate again this many "
        "tokens at the start of each moved run (the code right after an edit), so they see "
        "what was typed; see BENCHMARKS.md")
