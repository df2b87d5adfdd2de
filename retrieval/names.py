"""Repository (index) names: the one rule, shared by the CLI, the API and the router.

A name becomes part of Chroma collection names, so it may hold no path characters.
"""

from __future__ import annotations

import re

from retrieval.errors import BadRepoName

REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
REPO_NAME_RULE = ("1-100 letters, digits, '-' or '_', starting with a letter or digit "
                  "(no '/', '.', or spaces)")


def check_repo_name(repo: str) -> str:
    """The name itself, or BadRepoName saying what a valid name is."""
    if not REPO_NAME.fullmatch(repo):
        raise BadRepoName(f"repo name {repo!r} is not allowed: use {REPO_NAME_RULE}")
    return repo
