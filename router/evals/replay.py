"""A backend wrapper that records generations and replays them for an identical request.

The evaluation runs each problem on the local tier and on the cloud tier, then through the
routing graph. Decoding is greedy, so the graph asking either tier the identical request would
get the identical answer: the wrapper replays the recorded one instead of generating it again
(the graph's logic, signals and checks still run live). Replays are counted, and the time the
replayed generation took when it was recorded is added to ``replayed_ms`` (pro rata when the
graph stops reading a stream early), so routed latency stays honest.

``recorded`` preloads generations recorded by earlier runs (:mod:`router.evals.recorded`
rebuilds them from the committed records); they outlive :meth:`ReplayBackend.forget`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from agents.base import Backend, Generation, GenerationRequest, TokenEvent, Wrapped


class ReplayBackend(Wrapped):
    def __init__(self, inner: Backend, *, record_streams: bool = False,
                 recorded: Mapping[GenerationRequest, Generation] | None = None) -> None:
        """``record_streams``: ``generate`` goes through ``stream`` so the token events (with
        logprobs) are recorded too, for a later streaming replay (the local tier).
        ``recorded``: generations preloaded for these requests; a streaming replay of one
        yields a token event per logprob (the text on the first), so early abort reads the
        recorded logprobs."""
        super().__init__(inner)
        self._record_streams = record_streams
        self._preloaded = dict(recorded or {})
        self._recorded: dict[GenerationRequest, tuple[list[TokenEvent] | None, Generation]] = {}
        for request, final in self._preloaded.items():
            self._recorded[request] = (_events(final), final)
        self.replays = 0
        self.replayed_ms = 0.0
        self.live = 0

    def forget(self) -> None:
        """Drop this run's recordings (the preloaded ones stay) and reset the counters
        (between problems)."""
        self._recorded = {request: entry for request, entry in self._recorded.items()
                          if request in self._preloaded}
        self.replays = 0
        self.replayed_ms = 0.0
        self.live = 0

    def generated(self) -> list[Generation]:
        """What was generated live since :meth:`forget`, in order."""
        return [final for request, (_, final) in self._recorded.items()
                if request not in self._preloaded]

    def generate(self, request: GenerationRequest) -> Generation:
        if request in self._recorded:
            final = self._recorded[request][1]
            self.replays += 1
            self.replayed_ms += final.timings.total_ms
            return final
        if self._record_streams:
            return super().generate(request)
        self.live += 1
        final = self.inner.generate(request)
        self._recorded[request] = (None, final)
        return final

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        if request in self._recorded:
            return self._replay(request)
        return self._record(request)

    def _replay(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        events, final = self._recorded[request]
        if events is None:
            events = [TokenEvent(final.text)]
        self.replays += 1
        read = 0
        try:
            for event in events:
                read += 1
                yield event
            yield final
        finally:
            self.replayed_ms += final.timings.total_ms * min(1.0, read / max(1, len(events)))

    def _record(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        self.live += 1
        events: list[TokenEvent] = []
        for item in self.inner.stream(request):
            if isinstance(item, Generation):
                self._recorded[request] = (events, item)
            else:
                events.append(item)
            yield item

    def close(self) -> None:
        self.inner.close()


def _events(final: Generation) -> list[TokenEvent] | None:
    """A preloaded generation's stream: one event per logprob, the whole text on the first
    (records keep no token texts); None without logprobs (one event with the text)."""
    if not final.logprobs:
        return None
    return [TokenEvent(final.text if i == 0 else "", entry)
            for i, entry in enumerate(final.logprobs)]
