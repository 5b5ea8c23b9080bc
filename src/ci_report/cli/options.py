"""Click options generated from the :class:`~ci_report.config.Settings` fields (twine's pattern).

A command declares ``@setting_option("max_attempts")`` instead of writing the flag, its type, its
environment variable and its default again: the flag name, the type, the help text, the env names
and the default shown in ``--help`` all come from the field's metadata, so changing a default is
one edit in ``config.py``. The option's value reaches the command under the field's name, ``None``
when not given (so the environment and the config file still apply), and
:func:`settings_from` resolves the settings from those values.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, TypeVar

import click

if TYPE_CHECKING:
    from ..config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _field(name: str) -> dataclasses.Field[Any]:
    from ..config import _FIELDS

    try:
        return _FIELDS[name]
    except KeyError:
        raise ValueError(f"no setting named {name!r}") from None


def default_text(f: dataclasses.Field[Any]) -> Optional[str]:
    """The default as a person reads it, or None when there is none worth showing."""
    shown = f.metadata.get("default_text")
    if shown:
        return str(shown)
    if f.default is not dataclasses.MISSING and f.default not in (None, "", False):
        value = f.default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)
    return None


def help_text(name: str, extra: str = "") -> str:
    """``help`` of the field, then ``[env A, B; default D]``."""
    f = _field(name)
    parts = [extra or f.metadata.get("help") or name.replace("_", " ")]
    text = parts[0].rstrip(".") + "."
    text = text[:1].upper() + text[1:]
    tags = []
    env = f.metadata.get("env") or ()
    if env:
        tags.append("env " + ", ".join(env))
    default = default_text(f)
    if default is not None:
        tags.append(f"default {default}")
    return text + (f" [{'; '.join(tags)}]" if tags else "")


def setting_option(name: str, *param_decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option for the setting ``name``; ``param_decls`` default to ``--kebab-name``."""
    from ..config import _field_type

    f = _field(name)
    if f.metadata.get("secret"):
        raise ValueError(f"{name} is a secret: it is read from the environment only, never a flag")
    decls = list(param_decls) or ["--" + name.replace("_", "-")]
    kind = _field_type(f)
    options: dict[str, Any] = {"default": None, "show_default": False}
    if kind == "bool":
        options.update(is_flag=True, default=None)
    elif kind == "int":
        options["type"] = int
    elif kind == "float":
        options["type"] = float
    elif kind == "list":
        options["multiple"] = True
        options["default"] = ()
    choices = f.metadata.get("choices")
    if choices:
        options["type"] = click.Choice(list(choices), case_sensitive=False)
    help_extra = kwargs.pop("help", "")
    options["help"] = help_text(name, help_extra)
    options.update(kwargs)
    return click.option(*decls, name, cls=SettingOption, **options)


class SettingOption(click.Option):
    """An option made by :func:`setting_option`: its value is the setting of the same name."""


def setting_values(ctx: click.Context) -> dict[str, Any]:
    """The values of this command's :func:`setting_option` options (``None``: not given)."""
    return {
        str(p.name): ctx.params.get(str(p.name))
        for p in ctx.command.params
        if isinstance(p, SettingOption)
    }


def setting_flags(values: Mapping[str, Any]) -> dict[str, Any]:
    """The command-line values that are settings (others, like ``dry_run``, are left out)."""
    from ..config import SETTING_NAMES

    flags: dict[str, Any] = {}
    for key, value in values.items():
        if key in SETTING_NAMES:
            flags[key] = list(value) if isinstance(value, tuple) else value
    return flags


def settings_from(ctx: click.Context, values: Optional[Mapping[str, Any]] = None) -> Settings:
    """Resolve the settings (flags > env > config file > defaults) for this command: the one
    place every command gets them. ``values`` default to :func:`setting_values`."""
    from ..config import load_settings
    from .common import global_options_of

    given = setting_values(ctx) if values is None else values
    return load_settings(setting_flags(given), config_file=global_options_of(ctx).config)
