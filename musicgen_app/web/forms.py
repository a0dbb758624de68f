"""A request type's settings as page widgets, and the widgets' values back as the request.

    form = Form(ContinueRequest)
    bars = form.widget("bars")                      # a slider from the declaration
    go.click(handler, form.inputs | {panel.state}, ...)
    ...
    req = form.request(data, melody=m)               # in the handler: data is {component: value}

A handler gets every input as one dict (Gradio passes a set of inputs that way), so adding a
setting is its declaration, its use in the service and one layout line.
"""

from __future__ import annotations

import gradio as gr

from ..settings import Choice, Flag, Meter, Number, Seed, Setting, Text, build_request, settings_of
from .widgets import seed_row


def widget(declared: Setting, *, elem_id: str | None = None, **overrides):
    """The page's widget for one declared setting; ``overrides`` go to the component (label, info,
    choices for a Text setting whose values the page knows, radio=True for a Choice)."""
    kw = {"label": declared.label, "elem_id": elem_id} | overrides
    if isinstance(declared, Number) and not declared.optional:
        return gr.Slider(declared.low, declared.high, value=declared.default, step=declared.step, **kw)
    if isinstance(declared, Number):
        # a text box, not gr.Number: a number box cannot stay empty, and empty means "free" here
        kw.setdefault("info", declared.describe())
        return gr.Textbox("", placeholder="free", max_lines=1, min_width=kw.pop("min_width", 120), **kw)
    if isinstance(declared, Choice):
        options = [(words, value) for value, words in declared.options]
        if kw.pop("radio", False):
            return gr.Radio(options, value=declared.default, **kw)
        return gr.Dropdown(options, value=declared.default, **kw)
    if isinstance(declared, Meter):
        return gr.Dropdown(list(declared.options), value=declared.default, **kw)
    if isinstance(declared, Flag):
        return gr.Checkbox(declared.default, **kw)
    if isinstance(declared, Seed):
        return seed_row(elem_id)
    if isinstance(declared, Text):
        choices = kw.pop("choices", None)
        if choices is not None:
            value = kw.pop("value", declared.default)
            return gr.Dropdown(list(choices), value=value, interactive=bool(choices), **kw)
        return gr.Textbox(declared.default, max_lines=1, **kw)
    raise TypeError(f"no widget for {type(declared).__name__}")


class Form:
    """The widgets of one request type's settings on a page, by field name."""

    def __init__(self, request_type, prefix: str):
        self.request_type, self.prefix = request_type, prefix
        self.declared = settings_of(request_type)
        self.widgets: dict[str, gr.components.Component] = {}

    def widget(self, name: str, **overrides):
        """Build the widget of setting ``name`` here in the layout (elem_id ``prefix-name``)."""
        elem_id = overrides.pop("elem_id", f"{self.prefix}-{name.replace('_', '-')}")
        self.widgets[name] = widget(self.declared[name], elem_id=elem_id, **overrides)
        return self.widgets[name]

    @property
    def inputs(self) -> set:
        return set(self.widgets.values())

    def values(self, data: dict) -> dict:
        """The settings' raw values by field name, from a handler's {component: value}."""
        return {name: data[w] for name, w in self.widgets.items() if w in data}

    def request(self, data: dict, **given):
        """The request from the widgets' values and the objects the handler has (a melody ...)."""
        return build_request(self.request_type, self.values(data), **given)
