"""Reading config text: a bounded regular UTF-8 file, and YAML that means what it shows.

A search config decides what a nightly job spends, so what a reader sees must be what runs:
- the file is a regular file of at most `MAX_CONFIG_BYTES` (`cnn-tune run /dev/zero` is not
  read until memory runs out), in UTF-8 (the error names the first bad byte's offset);
- a key given twice in one mapping is an error naming its key path and both lines (YAML's
  default keeps the last one silently: `epochs: 2` at the top, `epochs: 5000` below);
- anchors and aliases may share values, but a document may not expand to more than
  `MAX_VALUES` values (a "billion laughs" file is a few lines) nor contain itself.
Tags beyond YAML's plain types (`!!python/...`) are refused by PyYAML's safe loader.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from tune.errors import SearchConfigError, describe_kind

MAX_CONFIG_BYTES = 1 << 20  # a search config is a page of YAML; 1 MiB leaves room for comments
MAX_VALUES = 100_000  # values a document may expand to, aliases counted at every use
MERGE_KEY = "<<"  # YAML's merge key may repeat; its mappings are merged, not overwritten


def read_config_file(path: str) -> str:
    """The text of config file `path`.

    Raises:
        SearchConfigError: (naming `path`) missing, unreadable, not a regular file, larger than
            `MAX_CONFIG_BYTES`, or not UTF-8.
    """
    try:
        # stat before open: opening a pipe with no writer would wait forever.
        kind = os.stat(path).st_mode
        if not stat.S_ISREG(kind):
            raise SearchConfigError(
                path, f"is {_kind_of(kind)}, not a regular file; allowed: a YAML file"
            )
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # a file growing as it is read stops here too
    except FileNotFoundError:
        raise SearchConfigError(path, "config file does not exist") from None
    except OSError as err:
        raise SearchConfigError(path, f"cannot read config file: {err.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise SearchConfigError(
            path, f"is larger than {MAX_CONFIG_BYTES} bytes; allowed: a config of at most 1 MiB"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SearchConfigError(
            path,
            f"is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "allowed: a UTF-8 file",
        ) from None


def load_yaml(text: str, where: str) -> Any:
    """Parse one YAML document as PyYAML's `safe_load` would, refusing repeated keys and
    documents that expand past `MAX_VALUES` values or contain themselves.

    Args:
        where: what the error names: the file, or ``--set KEY=VALUE``.

    Raises:
        SearchConfigError: naming `where`, the line and what is wrong.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters first: NUL and the like
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_repeated_keys(node, [], where, set())
        data = loader.construct_document(node)
        _count_values(data, where)
    except yaml.YAMLError as err:
        raise SearchConfigError(where, yaml_problem(err)) from None
    except RecursionError:
        raise SearchConfigError(
            where,
            "nests its lists and mappings too deep to read; allowed: a config of ordinary depth",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data


def yaml_problem(err: yaml.YAMLError) -> str:
    """'malformed YAML at line L, column C: PROBLEM' from a PyYAML error."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return f"malformed YAML: {problem}"
    return f"malformed YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _refuse_repeated_keys(node: yaml.Node, path: list[str], where: str, seen: set[int]) -> None:
    # A node an alias reuses is checked once: walking it again at every use is the expansion
    # the value count guards against.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and key != MERGE_KEY:
                same = (key_node.tag, key)  # 1 and "1" are two keys; their text is one
                if same in first_line:
                    at = ".".join([*path, key])
                    raise SearchConfigError(
                        where,
                        f"key {at!r} is given twice (lines {first_line[same]} and {line}); "
                        "allowed: each key once",
                    )
                first_line[same] = line
            _refuse_repeated_keys(value_node, [*path, key or "?"], where, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_repeated_keys(item, [*path, str(index)], where, seen)


def _count_values(data: Any, where: str) -> None:
    """Refuse a document whose values, expanded as every later walk of it sees them, exceed
    MAX_VALUES, or that contains itself. Shared parts are sized once (memoised), so this costs
    the document's size, not its expansion."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise SearchConfigError(where, "an alias refers to a value that contains it")
        open_.add(key)
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1
        for item in items:
            total += size(item)
            if total > MAX_VALUES:
                raise SearchConfigError(
                    where,
                    f"expands to more than {MAX_VALUES} values through its anchors and "
                    "aliases; allowed: a config of ordinary size",
                )
        open_.discard(key)
        sizes[key] = total
        return total

    size(data)


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_config_mapping(path: str) -> dict[str, Any]:
    """A config file's top-level mapping, read as `read_config_file` and `load_yaml` do (an
    empty file is an empty mapping).

    Raises:
        SearchConfigError: naming `path`, also when the file holds something else.
    """
    data = load_yaml(read_config_file(path), path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SearchConfigError(
            path,
            f"the file holds {describe_kind(data)}, not a mapping; allowed: a YAML mapping of keys",
        )
    return data
