"""Model instances from a hand-written query: for the few reads of every patient page whose
compiling by the ORM costs more than running them (``benchmarks/patient_journal.py``). The values
go through the converters the ORM itself would apply (the backend's, then the field's), so an
instance read here is the one the ORM would have built."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Model

M = TypeVar("M", bound=Model)

_Converters = list[tuple[int, list[Callable[..., Any]], Any]]
_CACHE: dict[tuple[str, type[Model], tuple[str, ...]], _Converters] = {}


def columns(model: type[Model], table_alias: str, names: Sequence[str] | None = None) -> str:
    """``alias.column, ...`` of ``model``'s concrete fields (or of the attnames ``names``)."""
    wanted = names if names is not None else attnames(model)
    by_attname = {f.attname: f.column for f in model._meta.concrete_fields}
    return ", ".join(f'{table_alias}."{by_attname[name]}"' for name in wanted)


def attnames(model: type[Model]) -> tuple[str, ...]:
    return tuple(f.attname for f in model._meta.concrete_fields)


def _converters(alias: str, model: type[Model], names: tuple[str, ...]) -> _Converters:
    key = (alias, model, names)
    if key not in _CACHE:
        connection = connections[alias]
        fields = {f.attname: f for f in model._meta.concrete_fields}
        found: _Converters = []
        for position, name in enumerate(names):
            expression = fields[name].get_col(model._meta.db_table)
            chain = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
            if chain:
                found.append((position, chain, expression))
        _CACHE[key] = found
    return _CACHE[key]


def instance(alias: str, model: type[M], names: tuple[str, ...], values: Sequence[Any]) -> M:
    """An instance of ``model`` from the database values of its fields ``names`` (the others
    deferred), converted as the ORM converts them."""
    row = list(values)
    connection = connections[alias]
    for position, chain, expression in _converters(alias, model, names):
        value = row[position]
        for convert in chain:
            value = convert(value, expression, connection)
        row[position] = value
    return model.from_db(alias, list(names), row)
