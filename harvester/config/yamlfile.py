"""Reading a YAML file that may be hostile, and quoting what was read without leaking it.

Its own module (not part of ``load``) because two files are read this way: the config itself
and ``clouds.yaml`` (:mod:`harvester.config.credentials`), and both must stay within the same
bounds: size before parsing, depth and alias expansion while parsing. Errors are reported by
position only, because the offending line may hold a secret.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from harvester.config.safetext import plausible_cloud_name

#: Hostile-input bounds, checked before (size) and while (depth, nodes) the YAML is parsed.
MAX_CONFIG_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64  # the schema is 5 levels deep; anything near this is not a config
MAX_NODES = 1_000_000  # after alias expansion: a billion-laughs file stops here


class Problem(Exception):
    """One failure at a key path (``""``: the file as a whole); load_config prefixes the file name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys and nesting deeper than :data:`MAX_DEPTH`.

    PyYAML composes nodes recursively, so a file of ten thousand ``[`` would otherwise end in
    a RecursionError; counting the depth here turns it into one config error line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise Problem("", f"nested more than {MAX_DEPTH} levels deep at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            shown = repr(str(key)) if plausible_cloud_name(str(key)) else "(not shown)"
            mark = key_node.start_mark
            raise Problem(
                "", f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: duplicate key {shown}"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand beyond :data:`MAX_NODES` or :data:`MAX_DEPTH`.

    Aliases make the node graph a DAG: ten anchors that each repeat the previous one ten times
    are a few lines of YAML and ten billion values once anything walks them (validation does).
    Sizes and depths are computed once per node, bottom-up and without recursion, so this costs
    time linear in the file, and a self-referencing anchor is refused as well.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            visiting.discard(key)
            if size[key] > MAX_NODES:
                raise Problem("", f"aliases expand to more than {MAX_NODES} values (an alias bomb?)")
            if depth[key] > MAX_DEPTH:
                raise Problem("", f"aliases nest values more than {MAX_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in visiting:
            raise Problem("", f"an anchor refers to itself at line {node.start_mark.line + 1}")
        visiting.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in visiting:
                raise Problem("", f"an anchor refers to itself at line {child.start_mark.line + 1}")
            if id(child) not in size:
                stack.append((child, False))


def parse_yaml(text: str) -> object:
    """Parse YAML, reporting errors by position only: the offending line may hold a secret."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _unquote(exc.problem or exc.context or "syntax error")
        raise Problem("", f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError:
        raise Problem("", "invalid YAML") from None
    except RecursionError:  # a last line of defence; the depth checks above should come first
        raise Problem("", "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


_QUOTED = re.compile(r"'([^']*)'")


def _unquote(problem: str) -> str:
    """PyYAML quotes what it choked on: a password starting with ``*`` or ``!`` is an "undefined
    alias" or an unknown "tag" and would be echoed. Keep single characters and ``<token>``
    names (``found character '\\t'``, ``got '<stream end>'``), hide anything longer."""

    def keep(m: re.Match[str]) -> str:
        text = m.group(1)
        return m.group(0) if len(text) <= 2 or (text.startswith("<") and text.endswith(">")) else "'...'"

    return _QUOTED.sub(keep, problem)


def read_text(path: Path) -> str:
    """The file's text, refusing anything over :data:`MAX_CONFIG_BYTES` before parsing it.

    The size is checked on the open file and the read is bounded too, so a FIFO or a device
    named as the config cannot make us read forever.
    """
    limit = MAX_CONFIG_BYTES
    too_big = f"the file is larger than {limit // (1024 * 1024)} MiB; that is not a config"
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                raise Problem("", too_big)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise Problem("", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise Problem("", too_big)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem("", "cannot read: not UTF-8 text") from None
