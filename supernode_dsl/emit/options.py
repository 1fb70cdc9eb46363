"""Emitter options (``cmx emit FORMAT -O name=value``), declared once per emitter class.

An emitter lists its options as :class:`Option` declarations (name, help, default, the
values it accepts and how the text becomes a typed value).  The framework uses the same
declarations three ways: :func:`check_options` rejects an unknown name or a bad value before
the emitter runs (``cmx emit`` turns that into a usage error, exit status 2, naming the
option and the values it accepts), :meth:`EmitContext.value
<supernode_dsl.emit.base.EmitContext.value>` hands the emitter the typed value (or the
default) and ``cmx emit --list`` prints :meth:`Option.describe`.

Only what the option text alone decides is checked here; what depends on the input (a plane
the topology does not have, a role the plan does not have) stays the emitter's ``E026``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from supernode_dsl.diagnostics import CmxError, Diagnostic

__all__ = [
    "Option",
    "OptionError",
    "check_options",
    "choice_option",
    "int_option",
    "ipv4_option",
    "names_option",
    "optional_text_option",
    "text_option",
]

T = TypeVar("T")


class OptionError(CmxError):
    """An unknown option or a value its declaration does not accept: an ``E026``
    diagnostic whose message names the option and what it accepts."""

    def __init__(self, message: str) -> None:
        super().__init__([Diagnostic("E026", message)])
        self.message = message


@dataclass(frozen=True)
class Option(Generic[T]):
    """One ``-O name=value`` option.

    ``parse`` turns the text into the typed value (raising ``ValueError`` with the reason
    when it cannot); ``choices``, when not empty, are the only texts accepted; ``default``
    is the value when the option is not given; ``metavar`` and ``shown_default`` are how
    ``--list`` shows the value and the default (``shown_default`` empty: the help says)."""

    name: str
    help: str
    default: T
    parse: Callable[[str], T]
    choices: tuple[str, ...] = ()
    metavar: str = "TEXT"
    shown_default: str = ""

    def read(self, text: str) -> T:
        """The typed value of ``-O name=text``; :class:`OptionError` when not accepted."""
        if self.choices and text not in self.choices:
            raise self.error(text, f"choose one of {', '.join(self.choices)}")
        try:
            return self.parse(text)
        except ValueError as err:
            raise self.error(text, str(err)) from None

    def error(self, text: str, reason: str) -> OptionError:
        """The :class:`OptionError` for the value ``text`` of this option."""
        return OptionError(f"option {self.name}={text!r}: {reason}")

    def describe(self) -> str:
        """One line for ``--list``: ``-O name=VALUES  help (default: ...)``."""
        values = "|".join(self.choices) if self.choices else self.metavar
        default = f" (default: {self.shown_default})" if self.shown_default else ""
        return f"-O {self.name}={values}  {self.help}{default}"


def check_options(format_name: str, declared: Sequence[Option[Any]],
                  given: Mapping[str, str]) -> None:
    """Raise :class:`OptionError` for the first option in ``given`` (sorted by name) that
    ``declared`` does not have or whose value its declaration does not accept."""
    by_name = {o.name: o for o in declared}
    for name in sorted(given):
        option = by_name.get(name)
        if option is None:
            raise OptionError(f"'{format_name}' has no option '{name}' (options: "
                              f"{', '.join(by_name) or 'none'})")
        option.read(given[name])


def _text(text: str) -> str:
    return text


def text_option(name: str, help: str, default: str) -> Option[str]:
    """Any text; ``default`` when not given."""
    return Option(name, help, default, _text, shown_default=default)


def optional_text_option(name: str, help: str) -> Option[str | None]:
    """Any text; None when not given (the emitter chooses, as ``help`` says)."""
    return Option[str | None](name, help, None, _text)


def choice_option(name: str, help: str, choices: Sequence[str],
                  default: str | None = None) -> Option[str]:
    """One of ``choices``; ``default`` (the first choice unless given) when not given."""
    chosen = choices[0] if default is None else default
    return Option(name, help, chosen, _text, tuple(choices), shown_default=chosen)


def int_option(name: str, help: str, default: int, minimum: int = 0) -> Option[int]:
    """A whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("not an integer") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value
    return Option(name, help, default, parse, metavar=f"INT>={minimum}",
                  shown_default=str(default))


def names_option(name: str, help: str) -> Option[tuple[str, ...] | None]:
    """Comma-separated names, blanks dropped; None when not given."""
    def parse(text: str) -> tuple[str, ...]:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    return Option[tuple[str, ...] | None](name, help, None, parse, metavar="NAME,...")


def ipv4_option(name: str, help: str, default: str) -> Option[ipaddress.IPv4Address]:
    """An IPv4 address."""
    def parse(text: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(text)
        except ipaddress.AddressValueError:
            raise ValueError("not an IPv4 address") from None
    return Option(name, help, ipaddress.IPv4Address(default), parse, metavar="IPV4",
                  shown_default=default)
