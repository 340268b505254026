"""What a run returns: a found box, a flagged fallback, or why nothing was found."""

from __future__ import annotations

from seal_agent.imaging.geometry import Box
from seal_agent.search.result import ScoredBox, SearchResult, StopReason
from seal_agent.search.run_state import RunState, _Candidate, _Hit


class Outcomes(RunState):
    """The ``SearchResult`` for each way a run ends."""

    # -- results -----------------------------------------------------------------------
    def _best_candidate(self) -> _Candidate | None:
        if self.is_seal:
            # The reference: highest confidence ever seen, strictly above 0.
            best = max(self.candidates, key=lambda c: c.score, default=None)
            return best if best is not None and best.score > 0 else None
        live = [c for c in self.candidates if not c.superseded]
        return max(live, key=lambda c: c.score, default=None)

    def _result(
        self,
        *,
        found: bool,
        reason: StopReason,
        message: str,
        box: Box | None,
        confidence: float | None,
        instances: list[ScoredBox] | None = None,
        fallback: bool = False,
    ) -> SearchResult:
        if self.confirmations:
            message = (
                f"{message}; {self.confirmations} confirmation patch(es) at native detail, "
                f"{self.dismissed} confident box(es) dismissed"
            )
        if self.notes:
            notes = list(dict.fromkeys(self.notes))  # a per-patch cue may fail many times
            message = f"{message}; {'; '.join(notes[:3])}"
        return SearchResult(
            target=self.target,
            strategy=self.strategy,
            found=found,
            box=box,
            confidence=confidence,
            instances=instances or [],
            stop_reason=reason,
            fallback=fallback,
            message=message,
            patches_scored=self.patches_scored,
            forward_passes=self.forward_passes,
            confirmations=self.confirmations,
            dismissed=self.dismissed,
            elapsed_s=self._elapsed(),
            trace=self.trace,
        )

    def _found(self, hit: _Hit) -> SearchResult:
        return self._result(
            found=True,
            reason="found",
            message=(
                f"found {self.target!r} with confidence {hit.score:.2f} at step {hit.step + 1} "
                f"({self.patches_scored} patches scored)"
            ),
            box=hit.box,
            confidence=hit.score,
            instances=hit.instances,
        )

    def _fallback(self) -> _Candidate | None:
        best = self._best_candidate()
        return best if best is not None and best.score >= self.th.confidence_low else None

    def _exhausted(self) -> SearchResult:
        if self.held is not None:  # every patch scored: the strongest confirmed box
            return self._found(self.held)
        fallback = self._fallback()
        if fallback is not None:
            return self._result(
                found=True,
                reason="fallback",
                message=(
                    f"no box cleared {self.th.confidence_high:g}; the best candidate "
                    f"({fallback.score:.2f}) cleared confidence_low {self.th.confidence_low:g}"
                ),
                box=fallback.box,
                confidence=fallback.score,
                fallback=True,
            )
        best = self._best_candidate()
        detail = f"best candidate {best.score:.2f}" if best is not None else "no candidate"
        return self._result(
            found=False,
            reason="exhausted",
            message=(
                f"{self.target!r} not found: every patch was scored ({self.patches_scored}); "
                f"{detail} below confidence_low {self.th.confidence_low:g}"
            ),
            box=best.box if best is not None else None,
            confidence=best.score if best is not None else None,
        )

    def _unfinished(self, reason: StopReason, message: str) -> SearchResult:
        if reason in ("budget", "deadline") and (held := self.held) is not None:
            # A box two native looks confirmed, held because it did not stand out.
            return self._result(
                found=True,
                reason=reason,
                message=(
                    f"{message}; returning the confirmed box held ({held.strength:.2f}, "
                    "two native looks) that had not yet stood out"
                ),
                box=held.box,
                confidence=held.score,
                instances=held.instances,
            )
        best = self._best_candidate()
        # Budgets keep what was found: a search cut short by max_calls or its deadline
        # returns its best live candidate at or above confidence_low (a confident box
        # still awaiting confirmation included), flagged as a fallback. A model fault
        # returns it too, but not as found: the run cannot vouch for it.
        if reason in ("budget", "deadline") and (fallback := self._fallback()) is not None:
            return self._result(
                found=True,
                reason=reason,
                message=(
                    f"{message}; returning the best candidate ({fallback.score:.2f}, at or "
                    f"above confidence_low {self.th.confidence_low:g}) as a fallback"
                ),
                box=fallback.box,
                confidence=fallback.score,
                fallback=True,
            )
        return self._result(
            found=False,
            reason=reason,
            message=f"{self.target!r} not found: {message}",
            box=best.box if best is not None else None,
            confidence=best.score if best is not None else None,
        )
