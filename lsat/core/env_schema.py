"""Settings sections ↔ environment variables, read through pydantic-settings.

A *section* is a frozen pydantic dataclass with a class attribute ``ENV_PREFIX``. Each of its
fields is one variable, named ``ENV_PREFIX + FIELD`` in upper case unless its ``Annotated``
metadata carries :class:`Env` with another name. A field whose type is another section is that
section, nested; a field of any other dataclass type (e.g. topic names) is not configurable
from the environment.

From the sections, :func:`environment_model` builds one flat pydantic-settings model: one field
per variable, with the section field's type, constraints and default. So one declaration gives
the variable's name, type, default and how it parses: booleans accept ``1/0``, ``true/false``,
``on/off``, ``yes/no`` everywhere, an empty value means unset, and a bad value raises
:class:`SettingsError` naming the variable and the value (secrets are masked).
:func:`render` is the inverse: it writes settings back as variables, for child processes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, TypeGuard, TypeVar, get_args

from pydantic import BeforeValidator, SecretStr, ValidationError, create_model
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "Env",
    "Section",
    "SettingsError",
    "Variable",
    "describe_errors",
    "environment_model",
    "read",
    "render",
    "variables",
]


class Section(Protocol):
    """A settings section as this module sees it (a pydantic dataclass, checked when read)."""

    ENV_PREFIX: ClassVar[str]


T = TypeVar("T", bound=Section)


class SettingsError(ValueError):
    """A variable whose value does not parse; the message names each variable and value."""


@dataclasses.dataclass(frozen=True)
class Env:
    """Field metadata: the variable's ``name`` when it is not ``ENV_PREFIX + FIELD``, and the
    word that stands for ``None`` when the default is not ``None`` (e.g. ``"all"`` layers)."""

    name: str | None = None
    none: str = ""


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable: its name and where its value lives in the settings."""

    name: str
    path: tuple[str, ...]
    info: FieldInfo
    none: str = ""

    @property
    def secret(self) -> bool:
        """Whether the value is a :class:`~pydantic.SecretStr` (never shown)."""
        return _mentions(self.info.annotation, SecretStr)


def _mentions(annotation: Any, kind: Any) -> bool:
    """Whether ``kind`` is ``annotation`` or one of its type arguments (``X | None``)."""
    return annotation is kind or any(_mentions(a, kind) for a in get_args(annotation))


def _is_section(annotation: object) -> TypeGuard[type[Section]]:
    return isinstance(annotation, type) and hasattr(annotation, "ENV_PREFIX")


def _fields(section: type) -> dict[str, FieldInfo]:
    if not is_pydantic_dataclass(section):
        raise TypeError(f"{section.__name__} is not a pydantic dataclass")
    return section.__pydantic_fields__


@functools.cache
def variables(root: type[Section]) -> tuple[Variable, ...]:
    """Every variable of ``root`` and its nested sections, in declaration order."""
    found: list[Variable] = []

    def walk(section: type[Section], path: tuple[str, ...]) -> None:
        for name, info in _fields(section).items():
            if _is_section(info.annotation):
                walk(info.annotation, (*path, name))
                continue
            if dataclasses.is_dataclass(info.annotation):
                continue  # a fixed structure such as topic names: not from the environment
            env = next((m for m in info.metadata if isinstance(m, Env)), Env())
            default = info.get_default(call_default_factory=True)
            if default is not None and not env.none and _accepts_none(info):
                raise TypeError(f"{section.__name__}.{name}: say which word means None (Env)")
            var_name = env.name or f"{section.ENV_PREFIX}{name.upper()}"
            found.append(Variable(var_name, (*path, name), info, env.none))

    walk(root, ())
    names = [v.name for v in found]
    if len(set(names)) != len(names):
        raise TypeError(f"{root.__name__}: a variable name is used twice in {names}")
    return tuple(found)


def _accepts_none(info: FieldInfo) -> bool:
    return _mentions(info.annotation, type(None))


def _none_word(word: str) -> BeforeValidator:
    return BeforeValidator(lambda value: None if value == word else value)


class _Environment(BaseSettings):
    """Base of the flat model: values come only from :func:`read`'s mapping."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._environ.items() if not (self.env_ignore_empty and v == "")}


@functools.cache
def environment_model(root: type[Section]) -> type[BaseSettings]:
    """The flat pydantic-settings model: one field per variable of ``root``."""
    fields: dict[str, Any] = {}
    for var in variables(root):
        info = var.info
        metadata = (*info.metadata, *((_none_word(var.none),) if var.none else ()))
        annotation = Annotated[(info.annotation, *metadata)] if metadata else info.annotation
        fields[var.name] = (annotation, info.get_default(call_default_factory=True))
    return create_model(f"{root.__name__}Environment", __base__=_Environment, **fields)


def describe_errors(exc: ValidationError, secret: set[str] | frozenset[str] = frozenset()) -> str:
    """``name=value: why`` for each error of ``exc`` (values of ``secret`` names masked)."""
    parts = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "?"
        value = "'**********'" if name in secret else repr(error["input"])
        parts.append(f"{name}={value}: {error['msg']}")
    return "; ".join(parts)


def read(root: type[T], environ: Mapping[str, str]) -> T:
    """Settings of type ``root`` from the variables in ``environ`` (defaults for the rest)."""
    model = environment_model(root)
    raw = _MappingSource(model, environ)()
    try:
        values = model(**raw)
    except ValidationError as exc:
        secret = {v.name for v in variables(root) if v.secret}
        why = describe_errors(exc, secret)
        raise SettingsError(f"bad environment variable(s): {why}") from None
    nested: dict[str, Any] = {}
    for var in variables(root):
        if var.name in raw:
            target = nested
            for part in var.path[:-1]:
                target = target.setdefault(part, {})
            target[var.path[-1]] = getattr(values, var.name)
    return _build(root, nested)


def _build(section: type[T], values: dict[str, Any]) -> T:
    fields = _fields(section)
    kwargs = {}
    for name, value in values.items():
        nested = fields[name].annotation
        kwargs[name] = _build(nested, value) if _is_section(nested) else value
    return section(**kwargs)


def _text(value: object, none: str) -> str:
    if value is None:
        return none
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    return str(value)


def render(settings: Section) -> dict[str, str]:
    """Every variable of ``settings`` as text; :func:`read` of the result gives them back.

    An unset optional value renders as ``""`` (read as unset), so a child process started with
    this environment cannot inherit a stale value of the same name.
    """
    rendered = {}
    for var in variables(type(settings)):
        value = functools.reduce(getattr, var.path, settings)
        rendered[var.name] = _text(value, var.none)
    return rendered
