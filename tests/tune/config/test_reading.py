"""tune.config.reading: config files read within bounds, YAML that means what it shows."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from tests.helpers import DEMO
from tune.config.reading import (
    MAX_CONFIG_BYTES,
    load_yaml,
    read_config_file,
    read_config_mapping,
)
from tune.errors import SearchConfigError


def laughs(levels: int) -> str:
    """A "billion laughs" document: 10**levels values in a few lines of anchors and aliases."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def refused(text: str) -> str:
    with pytest.raises(SearchConfigError) as err:
        load_yaml(text, "f.yaml")
    return str(err.value)


def test_ordinary_yaml_reads_as_safe_load_does():
    text = DEMO.read_text() + "extra: &shared {a: 1}\nagain: *shared\nmerged: {<<: *shared, b: 2}\n"
    assert load_yaml(text, "f.yaml") == yaml.safe_load(text)
    assert load_yaml("", "f.yaml") is None


def test_a_repeated_key_names_its_path_and_both_lines():
    text = "name: s\nepochs: 2\nsearch:\n  metric: val_acc\n  metric: val_loss\nepochs: 5000\n"
    assert refused(text) == (
        "f.yaml: key 'search.metric' is given twice (lines 4 and 5); allowed: each key once"
    )
    top = refused("epochs: 2\nx: 1\nepochs: 5000\n")
    assert "key 'epochs' is given twice (lines 1 and 3)" in top
    # In a list of mappings, and in a flow mapping on one line.
    assert "'a.1.b'" in refused("a:\n  - {b: 1}\n  - {b: 1, b: 2}\n")
    # 1 and "1" are two keys; YAML's merge key may repeat.
    assert load_yaml("1: a\n'1': b\n", "f") == {1: "a", "1": "b"}
    assert load_yaml("a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: *a, <<: *b}\n", "f")["c"] == {
        "x": 1,
        "y": 2,
    }


def test_aliases_that_expand_past_the_bound_are_refused_at_once():
    start = time.perf_counter()
    assert "expands to more than 100000 values" in refused(laughs(9))  # 10**9 values
    assert time.perf_counter() - start < 1.0  # sized once per shared value, never expanded
    assert load_yaml(laughs(3), "f")["l2"][0][0] == ["x"] * 10  # 1,000 values: fine


def test_a_value_that_contains_itself_and_deep_nesting_are_refused():
    assert "contains it" in refused("a: &a [1, *a]\n")
    assert "too deep" in refused("[" * 5000 + "]" * 5000)


def test_characters_yaml_refuses_are_one_error_not_a_crash():
    # Found by the fuzzer: PyYAML checks the characters as its loader is made.
    assert "unacceptable character #x0000" in refused("name: a\x00b\n")
    assert load_yaml('name: "a\\0b"', "f") == {
        "name": "a\x00b"
    }  # an escape is a value: paths check it


def test_tags_beyond_plain_yaml_are_refused():
    assert "could not determine a constructor" in refused("a: !!python/object/apply:os.system [x]")


def test_a_file_that_is_not_utf8_names_the_byte_and_its_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(SearchConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 9\)"):
        read_config_file(str(path))


def test_a_file_over_one_mib_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: s\n# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(SearchConfigError, match="larger than 1048576 bytes"):
        read_config_file(str(path))
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: s\n# " + "x" * (MAX_CONFIG_BYTES - 20) + "\n")
    assert read_config_file(str(ok)).startswith("name: s")


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda tmp: "/dev/zero", "a character device"),  # endless: never read until memory ends
        (lambda tmp: str(tmp), "a directory"),
        (lambda tmp: (os.mkfifo(tmp / "fifo"), str(tmp / "fifo"))[1], "a pipe"),  # no writer
    ],
    ids=["dev-zero", "directory", "fifo"],
)
def test_what_is_not_a_regular_file_is_refused_before_it_is_opened(tmp_path, make, kind):
    path = make(tmp_path)
    with pytest.raises(SearchConfigError, match=f"is {kind}, not a regular file"):
        read_config_file(path)


def test_a_mapping_is_what_a_config_file_holds(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert read_config_mapping(str(path)) == {}
    path.write_text("[1, 2]\n")
    with pytest.raises(SearchConfigError, match="holds a list, not a mapping"):
        read_config_mapping(str(path))
