"""Every route of the URL conf, with arguments filled in: the attacker's map of the platform.

The routes are read from the URL conf itself, so a route added later is covered by the security
tests without anyone listing it.
"""

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the pattern when unnamed
    pattern: str
    parameters: tuple[str, ...]
    converters: Mapping[str, str]

    @property
    def patient_scoped(self) -> bool:
        """Routes that name a patient (``public_id``) are patient-scoped: deny by default."""
        return "public_id" in self.parameters

    def url(self, values: Mapping[str, Any]) -> str:
        """The path with each ``<converter:name>`` replaced by ``values[name]``."""
        path = self.pattern
        for name in self.parameters:
            converter = self.converters[name]
            token = f"<{converter}:{name}>" if converter else f"<{name}>"
            path = path.replace(token, str(values.get(name, "1")))
        return "/" + path


def _walk(patterns: list[Any], prefix: str, namespace: str) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}".strip(":") if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + _text(entry), inner)
        elif isinstance(entry, URLPattern):
            pattern = prefix + _text(entry)
            converters = _converters(pattern)
            name = f"{namespace}:{entry.name}".strip(":") if entry.name else pattern
            yield Route(name=name, pattern=pattern, parameters=tuple(converters), converters=converters)


def _text(entry: URLPattern | URLResolver) -> str:
    pattern = entry.pattern
    if isinstance(pattern, RoutePattern):
        return str(pattern._route)
    # Regular expressions (the admin's catch-all, i18n): keep them readable; they take no
    # ``public_id`` and are filled by ``sample_values`` only for the named groups below.
    return str(pattern.regex.pattern).lstrip("^").rstrip("$").replace("\\Z", "")


def _converters(pattern: str) -> dict[str, str]:
    import re

    found: dict[str, str] = {}
    for match in re.finditer(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>", pattern):
        found[match["name"]] = match["converter"] or ""
    for match in re.finditer(r"\(\?P<(?P<name>\w+)>", pattern):
        found.setdefault(match["name"], "regex")
    return found


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", ""))


def concrete(route: Route, values: Mapping[str, Any]) -> str | None:
    """The route's path with ``values``, or None for regular-expression routes we cannot fill."""
    if any(route.converters[name] == "regex" for name in route.parameters):
        return None
    return route.url(values)


def sample_values(**known: Any) -> dict[str, Any]:
    """Values for every parameter the URL conf uses; ``known`` overrides (real ids)."""
    values: dict[str, Any] = {
        "public_id": uuid.uuid4(),
        "document_id": uuid.uuid4(),
        "dispensation_id": uuid.uuid4(),
        "code": "X" * 26,
        "step": 1,
        "object_id": 1,
        "app_label": "accounts",
        "content_type_id": 1,
    }
    values.update(known)
    return values
