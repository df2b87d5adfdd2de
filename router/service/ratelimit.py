"""The rate limits moved to the run layer (:mod:`router.run.ratelimit`); ``app.py`` builds
them from here until its import is updated."""

from router.run.ratelimit import RateLimits

__all__ = ["RateLimits"]
