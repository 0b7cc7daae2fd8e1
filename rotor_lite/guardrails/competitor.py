"""Competitor domains: every listed domain found at once in a payload's scan text, on domain boundaries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import ahocorasick  # type: ignore[import-not-found]  # no type stubs

# Characters that continue a domain label: a listed domain must not touch one of these on either side.
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class CompetitorMatcher:
    """Finds listed domains in lowercase text: `rivalcrm.com` matches `www.rivalcrm.com` and
    `x@rivalcrm.com`, not `notrivalcrm.com` nor `rivalcrm.com.au`."""

    def __init__(self, domains: Iterable[str]) -> None:
        self.domains = tuple(dict.fromkeys(domains))
        self._automaton: ahocorasick.Automaton | None = None
        if self.domains:
            automaton = ahocorasick.Automaton()
            for domain in self.domains:
                automaton.add_word(domain, domain)
            automaton.make_automaton()
            self._automaton = automaton

    def __bool__(self) -> bool:
        return self._automaton is not None

    def first_match(self, text: str) -> str | None:
        """The first listed domain that appears in `text` on domain boundaries, or None."""
        return next((domain for _, domain in self.matches(text)), None)

    def matches(self, text: str) -> Iterator[tuple[int, str]]:
        """(start, domain) of each listed domain in `text` on domain boundaries, by where it ends."""
        if self._automaton is None:
            return
        for end, domain in self._automaton.iter(text):
            start = end + 1 - len(domain)
            if _bounded(text, start, end + 1):
                yield start, str(domain)


def _bounded(text: str, start: int, end: int) -> bool:
    # on the left a dot is fine: that is a subdomain (www.rivalcrm.com)
    if start > 0 and text[start - 1] in _LABEL_CHARS:
        return False
    if end < len(text):
        after = text[end]
        if after in _LABEL_CHARS:
            return False
        if after == "." and end + 1 < len(text) and text[end + 1] in _LABEL_CHARS:
            return False
    return True
