"""Click options generated from a pydantic config: one definition of every stage option.

`options_from(Model)` turns each field of a stage's config (its name, type, default, bounds and
description) into a click option: `rounds: int = Field(2, ge=1, description=...)` becomes
`--rounds INTEGER RANGE [default: 2; x>=1]` with that help text. The command gets the values under
the field names and builds the config with `config_from(Model, kwargs)`, so the CLI, the YAML of
`charter run` and `--set sl.rounds=3` all use the same names, bounds and defaults.

The config classes are imported when the command module is, so they must stay light (no torch).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            out["min"] = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            out.update(min=meta.gt, min_open=True)
        elif isinstance(meta, annotated_types.Le):
            out["max"] = meta.le
        elif isinstance(meta, annotated_types.Lt):
            out.update(max=meta.lt, max_open=True)
    return out


def _unoptional(annotation: Any) -> tuple[Any, bool]:
    """`int | None` → (int, True)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def click_type(annotation: Any, info: FieldInfo) -> tuple[Any, bool]:
    """The click type of a field's annotation, and whether it is a list (a repeatable option)."""
    inner, _ = _unoptional(annotation)
    origin = get_origin(inner)
    if origin is list:
        (item,) = get_args(inner) or (str,)
        return click_type(item, info)[0], True
    if origin is Literal:
        return click.Choice([str(a) for a in get_args(inner)]), False
    bounds = _bounds(info)
    if inner is int:
        return (click.IntRange(**bounds) if bounds else click.INT), False
    if inner is float:
        return (click.FloatRange(**bounds) if bounds else click.FLOAT), False
    if inner is Path:
        return click.Path(path_type=Path), False
    if inner is str:
        return click.STRING, False
    raise TypeError(f"no command-line type for {annotation!r}: exclude the field or add one")


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def options_from(
    model: type[BaseModel],
    *,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
) -> Callable[[F], F]:
    """A decorator adding one click option per field of `model` (see the module docstring).

    `exclude`/`only` choose fields; `defaults` replaces a field's default for this command;
    `names` gives a field another flag (`{"learning_rate": "--lr"}`); `required` fields must be
    given. A field without a description is an error: every option has help text.
    """
    skip, wanted = set(exclude), None if only is None else list(only)
    defaults, names, must = dict(defaults or {}), dict(names or {}), set(required)
    fields = [
        (name, info)
        for name, info in model.model_fields.items()
        if name not in skip and (wanted is None or name in wanted)
    ]
    if wanted is not None:
        order = {name: i for i, name in enumerate(wanted)}
        fields.sort(key=lambda item: order[item[0]])

    def decorate(f: F) -> F:
        for name, info in reversed(fields):
            f = _option(model, name, info, defaults, names, name in must)(f)
        return f

    return decorate


def _option(
    model: type[BaseModel],
    name: str,
    info: FieldInfo,
    defaults: dict[str, Any],
    names: dict[str, str],
    required: bool,
) -> Callable[[F], F]:
    if not info.description:
        raise TypeError(f"{model.__name__}.{name} has no description (its option's help text)")
    flag = names.get(name, flag_name(name))
    default = defaults[name] if name in defaults else info.get_default(call_default_factory=True)
    help_text = info.description
    inner, _ = _unoptional(info.annotation)
    if inner is bool:
        return click.option(
            f"{flag}/--no-{flag[2:]}",
            name,
            default=bool(default),
            show_default=True,
            help=help_text,
        )
    kind, multiple = click_type(info.annotation, info)
    if multiple:
        return click.option(
            flag,
            name,
            type=kind,
            multiple=True,
            default=tuple(default or ()),
            show_default=bool(default),
            help=f"{help_text} (repeatable)",
        )
    return click.option(
        flag,
        name,
        type=kind,
        default=None if required else default,
        required=required,
        show_default=default is not None and not required,
        help=help_text,
    )


def config_from(config: type[M], values: Mapping[str, Any], /, **fixed: Any) -> M:
    """`config` built from a command's keyword arguments (only its own fields) and `fixed`;
    a bad value is a one-paragraph `ConfigError` naming the option."""
    from charter.errors import ConfigError

    data: dict[str, Any] = {}
    for name, info in config.model_fields.items():
        if name in values:
            value = values[name]
            if isinstance(value, tuple):
                value = list(value)
            if value is None and not _unoptional(info.annotation)[1]:
                continue  # not given: the model's default
            data[name] = value
    data.update(fixed)
    try:
        return config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a check of several options together
            raise ConfigError(msg) from None
        where = flag_name(str(err["loc"][0]))
        raise ConfigError(f"{where}: {msg}") from None
