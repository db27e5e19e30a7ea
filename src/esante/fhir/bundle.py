"""Search results as a FHIR ``searchset`` Bundle with ``total`` and ``self`` / ``next`` links."""

import urllib.parse
from collections.abc import Iterable
from typing import Any


def searchset(
    *,
    base: str,
    resource_type: str,
    resources: Iterable[dict[str, Any]],
    total: int,
    link_params: list[tuple[str, str]],
    page: int,
    count: int,
) -> dict[str, Any]:
    """A searchset; ``link_params`` are the parameters safe to put into a URL (never a matricule)."""

    def url(page_number: int) -> str:
        query = urllib.parse.urlencode([*link_params, ("_count", str(count)), ("_page", str(page_number))])
        return f"{base}/{resource_type}?{query}"

    links = [{"relation": "self", "url": url(page)}]
    if page * count < total:
        links.append({"relation": "next", "url": url(page + 1)})
    if page > 1:
        links.append({"relation": "previous", "url": url(page - 1)})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }
