"""A request's settings, declared once: kind, range or choices, default, label and help.

Each setting is a field of a request dataclass that carries its declaration. The service checks
requests with them; the page builds its widgets, the API its inputs, the CLI its options and the
MCP tools their schema from the same declaration, and every face builds the request in one call::

    @dataclass(frozen=True)
    class ContinueRequest:
        bars: int = number("Bars", 1, 32, 8, help="new bars after the input")
        ending: str = choice("End on", ENDINGS, "tonic chord", help="where the last bar lands")

    build_request(ContinueRequest, {"bars": "8", "ending": ""}, melody=m)
    # -> ContinueRequest(bars=8, ending="tonic chord", ...), or RequestError quoting the bad value

An empty value (None, "", whitespace) means the default. A setting whose default is None is
optional: empty means "free", the request leaves that quantity to the model.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

from .errors import RequestError
from .melody import meter_problem

MAX_SEED = 2**31 - 1


def draw_seed() -> int:
    """A seed for a request that gave none (it is returned with the result, so it can be repeated)."""
    return random.SystemRandom().randint(0, MAX_SEED)


def _shown(value) -> str:
    """A value as the message quotes it: a typed number as typed ("99"), anything else by its repr."""
    text = repr(value)
    if isinstance(value, str):
        try:
            float(value)
            text = value.strip()
        except ValueError:
            pass
    return text if len(text) <= 40 else text[:37] + "..."


def _empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class Setting:
    """What every kind of setting has: the words a person reads and the default."""

    label: str
    default: object = None
    help: str = ""

    @property
    def optional(self) -> bool:
        return self.default is None

    def describe(self) -> str:
        """The help text with what values are allowed, for tooltips, ``--help`` and API docs."""
        return self.help

    def parse(self, name: str, value):
        """A widget's, a form's or an argument's value -> the request's value, or RequestError."""
        return self.default if _empty(value) else self._parse(name, value)

    def _parse(self, name: str, value):
        return value

    def check(self, name: str, value) -> None:
        """The request's value is one this setting allows (a request built without parse)."""


@dataclass(frozen=True)
class Number(Setting):
    """A number from ``low`` to ``high``; ``step`` 1 (any whole number) means whole numbers only."""

    low: float = 0
    high: float = 1
    step: float = 1

    @property
    def whole(self) -> bool:
        return float(self.step).is_integer()

    def describe(self) -> str:
        default = "empty: free" if self.optional else f"default {self.default:g}"
        return f"{self.help} ({self.low:g}-{self.high:g}, {default})".lstrip()

    def _range(self) -> str:
        return f"{'a whole number' if self.whole else 'a value'} from {self.low:g} to {self.high:g}" + (
            ", or leave it empty for free" if self.optional else "")

    def check(self, name: str, value) -> None:
        if value is None and self.optional:
            return
        ok_type = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or not self.low <= value <= self.high:
            raise RequestError(f"{self.label} {_shown(value)} is out of range; choose {self._range()}.")

    def _parse(self, name: str, value):
        try:
            if isinstance(value, bool):  # True is 1 to Python, not to a musician
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise RequestError(f"{self.label} {_shown(value)} is not a number; choose {self._range()}.")
        if self.whole:
            if not number.is_integer():
                raise RequestError(f"{self.label} {_shown(value)} is not a whole number; choose {self._range()}.")
            number = int(number)
        if not self.low <= number <= self.high:  # quoted as the musician typed it ("99", not 99.0)
            raise RequestError(f"{self.label} {_shown(value)} is out of range; choose {self._range()}.")
        return number


@dataclass(frozen=True)
class Choice(Setting):
    """One of ``options``, each (value, what the page shows); a value or its words are accepted,
    in any case."""

    options: tuple[tuple[str, str], ...] = ()

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.options)

    def _listed(self) -> str:
        values = [str(v) for v in self.values]
        return ", ".join(values) if len(values) <= 8 else f"{', '.join(values[:6])}, ... ({len(values)} choices)"

    def describe(self) -> str:
        return f"{self.help} (one of: {self._listed()}; default {self.default})".lstrip()

    def check(self, name: str, value) -> None:
        if value not in self.values:
            self._refuse(value)

    def _refuse(self, value):
        raise RequestError(f"{self.label} {_shown(value)} is not one of the choices; choose one of: {self._listed()}.")

    def _parse(self, name: str, value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip().lower()
        for v, words in self.options:
            if text in (str(v).lower(), words.lower()):
                return v
        self._refuse(value)


@dataclass(frozen=True)
class Text(Setting):
    """A short free text, such as a SoundFont's name (the face offers what exists)."""

    max_length: int = 200

    def check(self, name: str, value) -> None:
        if not isinstance(value, str) or len(value) > self.max_length:
            raise RequestError(f"{self.label} {_shown(value)} must be a text of at most {self.max_length} characters.")

    def _parse(self, name: str, value):
        value = str(value).strip()
        self.check(name, value)
        return value


@dataclass(frozen=True)
class Flag(Setting):
    """Yes or no."""

    def describe(self) -> str:
        return f"{self.help} (true or false; default {str(self.default).lower()})".lstrip()

    def check(self, name: str, value) -> None:
        if not isinstance(value, bool):
            raise RequestError(f"{self.label} {_shown(value)} must be true or false.")

    def _parse(self, name: str, value):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text in ("true", "false"):
            return text == "true"
        raise RequestError(f"{self.label} {_shown(value)} must be true or false.")


@dataclass(frozen=True)
class Seed(Setting):
    """The random seed: empty picks one (the seed used is shown back)."""

    def describe(self) -> str:
        return f"whole number 0-{MAX_SEED}; empty: a random one (the seed used is returned)"

    def check(self, name: str, value) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                                  not 0 <= value <= MAX_SEED):
            raise RequestError(f"Seed {_shown(value)} must be a whole number from 0 to {MAX_SEED}, or empty for a "
                               "random one.")

    def _parse(self, name: str, value):
        return parse_seed(value)


@dataclass(frozen=True)
class Meter(Setting):
    """A time signature written like 3/4; the request holds (numerator, denominator)."""

    options: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.help} (e.g. {', '.join(self.options)}; default {self.default})".lstrip()

    def parse(self, name: str, value):
        return parse_time_signature(self.default if _empty(value) else value)

    def check(self, name: str, value) -> None:
        if not (isinstance(value, tuple) and len(value) == 2):
            raise RequestError(f"Time signature {_shown(value)} is not like 3/4 or 6/8.")
        problem = meter_problem(*value)
        if problem:
            raise RequestError(problem)


def _field(declared: Setting, default=dataclasses.MISSING):
    value = declared.default if default is dataclasses.MISSING else default
    return dataclasses.field(default=value, metadata={"setting": declared})


def number(label: str, low: float, high: float, default: float | None, step: float = 1, help: str = ""):
    """A number field (default None: optional, empty = free)."""
    return _field(Number(label, default, help, low, high, step))


def choice(label: str, options, default: str, help: str = ""):
    """A choice field; ``options``: values, or (value, words shown) pairs, or a {value: words} dict."""
    if isinstance(options, dict):
        options = tuple(options.items())
    pairs = tuple((o, o) if isinstance(o, str) else tuple(o) for o in options)
    return _field(Choice(label, default, help, pairs))


def text(label: str, default: str = "", help: str = ""):
    return _field(Text(label, default, help))


def flag(label: str, default: bool = False, help: str = ""):
    return _field(Flag(label, default, help))


def seed():
    return _field(Seed("Seed", None))


def meter(label: str, options, default: str, help: str = ""):
    declared = Meter(label, default, help, tuple(options))
    return _field(declared, parse_time_signature(default))


def settings_of(request_type) -> dict[str, Setting]:
    """The declared settings of a request type, by field name, in declaration order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(request_type) if "setting" in f.metadata}


def spec(request_type, name: str) -> Setting:
    return settings_of(request_type)[name]


def check_settings(request) -> None:
    """Every declared setting of ``request`` holds a value it allows (types included)."""
    for name, s in settings_of(type(request)).items():
        s.check(name, getattr(request, name))


def build_request(request_type, values: dict | None = None, **given):
    """A request from a face's raw values by field name (text, numbers, None for empty) and the
    values it already has as objects (a Melody, a fitted style): each declared setting is parsed by
    its declaration; one a face does not show takes its default. Unknown names are refused."""
    values = dict(values or {})
    declared = settings_of(request_type)
    unknown = set(values) - set(declared)
    if unknown:
        raise RequestError(f"Unknown setting(s) {', '.join(sorted(unknown))}; the settings are: "
                           f"{', '.join(declared)}.")
    parsed = {name: s.parse(name, values[name]) for name, s in declared.items() if name in values}
    return request_type(**parsed, **given)


def parse_seed(value) -> int | None:
    """Empty means "pick one for me" (the seed used is shown back); anything else is a whole number
    from 0 to MAX_SEED, or refused (a negative seed is not silently made random)."""
    if _empty(value):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        seed = int(number)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"Seed {_shown(value)} is not a whole number; type one from 0 to {MAX_SEED} or leave it "
                           "empty for a random one.") from None
    if seed != number or not 0 <= seed <= MAX_SEED:
        raise RequestError(f"Seed {_shown(value)} must be a whole number from 0 to {MAX_SEED}, or empty for a "
                           "random one.")
    return seed


def parse_time_signature(text) -> tuple[int, int]:
    """'3/4' -> (3, 4), or :class:`RequestError` quoting the text and saying what is allowed."""
    try:
        num, den = (int(x) for x in str(text).strip().split("/"))
    except ValueError:
        raise RequestError(f"Time signature {_shown(text)} is not like 3/4 or 6/8.") from None
    problem = meter_problem(num, den)
    if problem:
        raise RequestError(problem)
    return num, den
