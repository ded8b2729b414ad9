"""A small writer of Triton's ``config.pbtxt`` (protobuf text format) from plain Python values.

dict -> message, list of dicts -> repeated message, list of scalars -> repeated field,
str -> quoted string, ``Enum`` (a bare identifier such as TYPE_FP32) -> unquoted, bool -> true/false.
Short messages go on one line (``{ name: "image" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }``).
"""
from __future__ import annotations

import json

INLINE_WIDTH = 100


class Enum(str):
    """A protobuf enum value, written without quotes."""


def scalar(value) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a double-quoted string with escapes


def field(key: str, value) -> str:
    """One field on one line."""
    if isinstance(value, dict):
        return f"{key} {inline(value)}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return f"{key} [ {', '.join(inline(v) for v in value)} ]"
    if isinstance(value, list):
        return f"{key}: [ {', '.join(scalar(v) for v in value)} ]"
    return f"{key}: {scalar(value)}"


def inline(message: dict) -> str:
    return "{ " + " ".join(field(k, v) for k, v in message.items() if v is not None) + " }"


def render(message: dict, indent: int = 0) -> str:
    """The text of a message's fields, one per line; nested messages inline when short, else as blocks."""
    pad = "  " * indent
    lines = []
    for key, value in message.items():
        if value is None:
            continue
        one_line = field(key, value)
        if len(pad) + len(one_line) <= INLINE_WIDTH or not isinstance(value, (dict, list)):
            lines.append(f"{pad}{one_line}\n")
        elif isinstance(value, dict):
            lines.append(f"{pad}{key} {{\n{render(value, indent + 1)}{pad}}}\n")
        elif value and isinstance(value[0], dict):
            items = [f"{pad}  {inline(v)}" if len(pad) + len(inline(v)) <= INLINE_WIDTH
                     else f"{pad}  {{\n{render(v, indent + 2)}{pad}  }}" for v in value]
            lines.append(f"{pad}{key} [\n" + ",\n".join(items) + f"\n{pad}]\n")
        else:
            lines.append(f"{pad}{one_line}\n")
    return "".join(lines)
