"""Safe YAML with positions: every value keeps the file, line and column it came from.

Refuses duplicate keys, non-mapping documents, oversized files and alias-expansion bombs, always
as ``SpecError`` (never a yaml traceback).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.spec import fs
from pipelines.spec.errors import SpecError, fail, shown

MAX_BYTES = 512 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 32
MAX_KEY_CHARS = 256

ALLOWED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")}
Loc = tuple  # a path into the document: ("models", 0, "name")


@dataclass
class Sourced:
    """A document plus where each of its paths was written."""

    data: dict
    positions: dict[Loc, tuple[str, int, int]] = field(default_factory=dict)

    def where(self, loc: Loc) -> tuple[str, int, int]:
        for end in range(len(loc), -1, -1):
            if tuple(loc[:end]) in self.positions:
                return self.positions[tuple(loc[:end])]
        return next(iter(self.positions.values()), ("<spec>", 1, 1))


def read_text(path: Path, label: str) -> str:
    if not fs.is_file(path):
        raise fail(label, "file not found", hint="check the path")
    if path.stat().st_size > MAX_BYTES:
        raise fail(label, f"file is larger than {MAX_BYTES // 1024} KiB", hint="an experiment spec is a small file")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(label, f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8") from None


def check_shape(text: str, label: str) -> None:
    """Depth and document count from the event stream (iterative), before the recursive composer runs:
    a deeply nested document would otherwise exhaust Python's recursion limit."""
    depth, documents = 0, 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise fail(label, "a spec is one YAML document; a second one starts here (---)",
                           line=event.start_mark.line + 1, column=event.start_mark.column + 1,
                           hint="remove the second document or move it to its own file")
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise fail(label, f"values nested more than {MAX_DEPTH} levels deep", line=event.start_mark.line + 1,
                           column=event.start_mark.column + 1, hint="an experiment spec is a few levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_text(text: str, label: str) -> Sourced:
    try:
        check_shape(text, label)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise fail(label, f"invalid YAML: {exc.problem or exc}", line=line, column=col) from None
    except yaml.YAMLError as exc:
        raise fail(label, f"invalid YAML: {exc}") from None
    if node is None:
        raise fail(label, "the file is empty", hint="start from templates/text-classification.yaml")
    if not isinstance(node, yaml.MappingNode):
        raise fail(label, "the document must be a mapping of keys to values", line=node.start_mark.line + 1)
    out = Sourced(data={})
    counter = [0]
    out.data = _build(node, (), label, out.positions, counter)
    return out


def _build(node: yaml.Node, loc: Loc, label: str, positions: dict, counter: list[int]):
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise fail(label, "document expands to too many values (alias bomb?)", hint="remove anchors/aliases")
    positions[loc] = (label, node.start_mark.line + 1, node.start_mark.column + 1)
    if node.tag not in ALLOWED_TAGS:
        raise fail(label, f"unsupported YAML tag {node.tag}", line=node.start_mark.line + 1,
                   column=node.start_mark.column + 1, path=_dotted(loc), hint="plain values, lists and mappings only")
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise fail(label, "YAML merge keys (<<) are not supported", line=key_node.start_mark.line + 1,
                           hint="use base: to inherit from a template")
            key = _scalar(key_node, label)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise fail(label, "mapping keys must be plain scalars", line=key_node.start_mark.line + 1)
            if len(str(key)) > MAX_KEY_CHARS:
                raise fail(label, f"a key of {len(str(key))} characters", line=key_node.start_mark.line + 1,
                           column=key_node.start_mark.column + 1, path=_dotted(loc),
                           hint="keys are short names such as models or learning_rate")
            if key in result:
                raise fail(label, f"duplicate key {shown(key)}", line=key_node.start_mark.line + 1,
                           column=key_node.start_mark.column + 1, path=_dotted(loc + (key,)),
                           hint="each key may appear once; remove one of them")
            result[key] = _build(value_node, loc + (key,), label, positions, counter)
            positions[loc + (key,)] = (label, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), label, positions, counter) for i, item in enumerate(node.value)]
    return _scalar(node, label, loc)


CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _scalar(node: yaml.Node, label: str, loc: Loc = ()):
    if not isinstance(node, yaml.ScalarNode):
        raise fail(label, "mapping keys must be plain scalars", line=node.start_mark.line + 1)
    try:
        value = yaml.SafeLoader("").construct_scalar(node) if node.tag == "tag:yaml.org,2002:str" else _typed(node)
    except yaml.YAMLError as exc:
        raise fail(label, f"invalid value: {exc}", line=node.start_mark.line + 1) from None
    if isinstance(value, str) and (bad := CONTROL_RE.search(value)):
        # a NUL or escape byte in a name or path reaches file systems and AWS APIs, which refuse it
        raise fail(label, f"the value holds a control character (U+{ord(bad.group()):04X}) at position {bad.start()}",
                   line=node.start_mark.line + 1, column=node.start_mark.column + 1, path=_dotted(loc),
                   hint="remove it; write text only (a tab or a newline is fine)")
    return value


INT_TAG, FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
YAML12_INT = re.compile(r"^[-+]?[0-9]+$")


def _yaml12_number(node: yaml.ScalarNode):
    """Numbers by YAML 1.2's rules, not 1.1's: `1:30` (base 60 in 1.1: 90), `010` (octal in 1.1: 8) and
    `1_000` stay the text written, which the field's own rule then refuses or reads, never a silent other
    number. None: the value is a number both versions read alike."""
    text = node.value
    if node.tag == INT_TAG:
        if YAML12_INT.match(text):
            return int(text, 10)
        if re.match(r"^0o[0-7]+$", text) or re.match(r"^0x[0-9a-fA-F]+$", text):
            return int(text, 0)
        return text
    if node.tag == FLOAT_TAG and ("_" in text or ":" in text):
        return text
    return None


def _typed(node: yaml.ScalarNode):
    number = _yaml12_number(node)
    if number is not None:
        return number
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise yaml.YAMLError(str(exc.problem)) from None
    except (ValueError, OverflowError) as exc:
        raise yaml.YAMLError(str(exc)) from None
    finally:
        loader.dispose()


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted


def parse_value(raw: str, label: str):
    """A command-line override value, typed the way YAML would type it."""
    try:
        return load_text(f"v: {raw}", label).data["v"] if raw.strip() else ""
    except SpecError:
        return raw
