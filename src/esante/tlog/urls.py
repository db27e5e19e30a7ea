"""The public log, mounted at ``/journal/`` (no login, read-only)."""

from django.urls import path, register_converter

from . import views


class TileIndexConverter:
    """A C2SP tile index path (``x001/x234/067``); its exact spelling is checked by the view
    (``tiles.parse_index``: 404 otherwise)."""

    regex = r"[0-9x/]{1,32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class TileWidthConverter:
    """A partial tile's width: 1 to 255, no leading zero (C2SP)."""

    regex = r"[1-9][0-9]{0,2}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(TileIndexConverter, "tileindex")
register_converter(TileWidthConverter, "tilewidth")

app_name = "tlog"

urlpatterns = [
    path("checkpoint", views.checkpoint, name="checkpoint"),
    path("key", views.verifier_key, name="key"),
    path("tile/entries/<tileindex:index>", views.entries, name="entries"),
    path("tile/entries/<tileindex:index>.p/<tilewidth:width>", views.entries, name="entries-partial"),
    path("tile/<int:level>/<tileindex:index>", views.tile, name="tile"),
    path("tile/<int:level>/<tileindex:index>.p/<tilewidth:width>", views.tile, name="tile-partial"),
    path("proof/inclusion", views.inclusion, name="inclusion"),
    path("proof/consistency", views.consistency, name="consistency"),
]
