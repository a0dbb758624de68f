"""A request's numeric settings, declared once: range, default, step and words.

The service validates requests with them; the page builds its sliders, the API its inputs and the
CLI its options from the same declaration, so a limit or a default cannot disagree between them::

    @dataclass(frozen=True)
    class ContinueRequest:
        bars: int = setting("Bars", 1, 32, 8, help="new bars after the input")

    spec(ContinueRequest, "bars").parse("8")   # -> 8, or RequestError quoting the bad value

A setting whose default is None is optional: None (an empty box) means "free", the request leaves
that quantity to the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import RequestError
from .melody import meter_problem

MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Setting:
    """One number a user sets. ``step`` 1 (or any whole number) means whole numbers only; a None
    default makes it optional (None = free)."""

    label: str
    low: float
    high: float
    default: float | None
    step: float = 1
    help: str = ""

    @property
    def whole(self) -> bool:
        return float(self.step).is_integer()

    @property
    def optional(self) -> bool:
        return self.default is None

    def describe(self) -> str:
        default = "empty: free" if self.optional else f"default {self.default:g}"
        return f"{self.help} ({self.low:g}-{self.high:g}, {default})".lstrip()

    def check(self, name: str, value) -> None:
        if value is None and self.optional:
            return
        ok_type = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or not self.low <= value <= self.high:
            raise RequestError(f"{name} = {_shown(value)} is out of range; choose "
                               f"{'a whole number' if self.whole else 'a value'} from {self.low:g} to {self.high:g}"
                               + (", or leave it empty for free." if self.optional else "."))

    def parse(self, name: str, value) -> int | float | None:
        """A widget's, a form's or an argument's value -> a number in range, or :class:`RequestError`.

        Empty means the default (None for an optional setting). Text and floats are accepted where
        they mean a number ("8", 8.0).
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            value = self.default
            if value is None:
                return None
        try:
            if isinstance(value, bool):  # True is 1 to Python, not to a musician
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise RequestError(f"{self.label} {_shown(value)} is not a number; choose one from {self.low:g} "
                               f"to {self.high:g}.") from None
        if not math.isfinite(number):
            raise RequestError(f"{self.label} {_shown(value)} is not a number; choose one from {self.low:g} "
                               f"to {self.high:g}.")
        if self.whole:
            if not number.is_integer():
                raise RequestError(f"{self.label} {_shown(value)} is not a whole number; choose one from "
                                   f"{self.low:g} to {self.high:g}.")
            number = int(number)
        self.check(name, number)
        return number


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def setting(label: str, low: float, high: float, default: float | None, step: float = 1, help: str = ""):
    """A dataclass field carrying its :class:`Setting` (default None: optional)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(label, low, high, default, step, help)})


def specs(request_type) -> dict[str, Setting]:
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(request_type) if "setting" in f.metadata}


def spec(request_type, name: str) -> Setting:
    return specs(request_type)[name]


def check_settings(request) -> None:
    """Every declared setting of ``request`` in its range (types included)."""
    for name, s in specs(type(request)).items():
        s.check(name, getattr(request, name))


def parse_settings(request_type, values: dict) -> dict:
    """Raw values by field name -> parsed numbers, for the declared settings among them."""
    declared = specs(request_type)
    return {k: declared[k].parse(k, v) if k in declared else v for k, v in values.items()}


def parse_seed(value) -> int | None:
    """Empty or negative means "pick one for me" (the seed used is shown back)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
        seed = int(number)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"Seed {_shown(value)} is not a whole number; type one from 0 to {MAX_SEED} or leave it "
                           "empty for a random one.") from None
    if seed != number or seed > MAX_SEED:
        raise RequestError(f"Seed {_shown(value)} must be a whole number from 0 to {MAX_SEED}, or empty for a "
                           "random one.")
    return None if seed < 0 else seed


def check_seed(seed) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise RequestError(f"seed = {seed!r} must be a whole number from 0 to {MAX_SEED}, or empty for a random one.")


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


def build_request(request_type, **raw):
    """A request from raw form values: declared settings and the seed parsed, the rest as given."""
    values = parse_settings(request_type, raw)
    if "seed" in values:
        values["seed"] = parse_seed(values["seed"])
    return request_type(**values)
