"""The config surface, fuzzed (Hypothesis): search configs generated from the schema itself
(the dataclasses of `tune.config.schema` and `trainables.config`), with valid and invalid values
for every key (control characters, NUL bytes and over-long paths among them), `--set`
strings, and config files as bytes (the demo with bytes inserted, lines repeated, anchors
added). `validate` and `run` (stopped where Ray would start, after every check `run` makes)
exit 0, 2 or 3, never raise, never print a traceback, and every exit 2 is one line (naming a
key path, where the config parsed)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import socket
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.helpers import DEMO as DEMO_PATH
from trainables.config import TrialConfig
from tune.cli import main
from tune.config import schema
from tune.errors import DriverError, ExitCode

EXAMPLES = int(
    os.environ.get("FUZZ_EXAMPLES", "400")
)  # per property: with the fixed seed, ~15 s each on 2 cores
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # a fixed seed, not examples saved from earlier runs: CI sees the same
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = closed_port()  # an unreachable tracking server: exit 3 is right for it

# Values of no kind a key expects, and edge values of the kinds it does.
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-300, 1e300, float("nan"), float("inf"), -0.0, 2**63]),
    st.text(max_size=12),
    st.sampled_from(["", " ", "é", "名前", "\u202e", "..", "/", "a" * 200, "1e3", "yes"]),
    st.sampled_from(["a\x00b", "\x00", "\x1b[2J", "\x07", "x" * 300, "/y" * 2100]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def paths(base: Path) -> st.SearchStrategy:
    """Paths that all lie inside the test's folder (relative ones resolve against it)."""
    parts = st.sampled_from(["a", "b", "rr", "..x", "sp ace", "ü", "n\x00ul", "\x1b", "l" * 256])
    rel = st.lists(parts, min_size=1, max_size=3).map("/".join)
    return st.one_of(rel, rel.map(lambda p: str(base / p)), st.just(str(base / "plain-file")))


def uris(base: Path) -> st.SearchStrategy:
    return st.one_of(
        paths(base).map(lambda p: f"sqlite:///{p}.db"),
        st.just(f"http://127.0.0.1:{CLOSED}"),
        st.just(f"sqlite:///{base / 'plain-file'}/x.db"),
        st.just("ftp://example.invalid/x"),
        st.just(f"file:{base / 'mlruns'}"),
    )


def kind_of(hint: typing.Any) -> set[type]:
    """The plain types a field's annotation admits (str | None -> {str, NoneType})."""
    args = typing.get_args(hint)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return {t for a in args for t in kind_of(a)}
    origin = typing.get_origin(hint)
    return {origin or hint}


def value_for(name: str, hint: typing.Any, default: typing.Any, base: Path) -> st.SearchStrategy:
    """Valid-looking values of a field's own kind, its default, and junk."""
    kinds = kind_of(hint)
    own: list[st.SearchStrategy] = [junk]
    if default is not dataclasses.MISSING and not callable(default):
        own.append(st.just(default))
    if "path" in name or name in ("data_root", "cache_dir"):
        own.append(paths(base))
    if name == "tracking_uri":
        own.append(uris(base))
    if int in kinds:
        own.append(st.integers(min_value=-3, max_value=2000))
    if float in kinds:
        own.append(st.floats(min_value=-1, max_value=1e4, allow_nan=False))
    if bool in kinds:
        own.append(st.booleans())
    return st.one_of(*own)


def section(cls: type, base: Path) -> st.SearchStrategy:
    """A mapping for dataclass `cls`: any subset of its keys, plus now and then a stray key."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        nested = [t for t in kind_of(hints[f.name]) if dataclasses.is_dataclass(t)]
        if nested:  # search.stop, search.stop.plateau
            fields[f.name] = st.one_of(section(nested[0], base), junk)
        else:
            fields[f.name] = value_for(f.name, hints[f.name], f.default, base)
    stray = st.dictionaries(st.sampled_from(["colour", "épsilon", "x" * 40]), junk, max_size=1)
    return st.tuples(st.fixed_dictionaries({}, optional=fields), stray).map(
        lambda pair: {**pair[0], **pair[1]}
    )


SPACE_KEYS = [f.name for f in dataclasses.fields(TrialConfig)]
domains = st.one_of(
    st.lists(junk, max_size=3),
    st.lists(st.sampled_from(["relu", "tanh", "none", "crop", 32, 64, 1e-3]), min_size=1),
    st.dictionaries(
        st.sampled_from(["loguniform", "uniform", "grid", "bogus"]),
        st.one_of(st.lists(junk, max_size=3), st.just([1e-4, 1e-2])),
        min_size=1,
        max_size=2,
    ),
    junk,
)
DEMO = yaml.safe_load(DEMO_PATH.read_text())


@functools.cache  # one strategy per test folder: building it per example took a third of the time
def search_configs(base: Path) -> st.SearchStrategy:
    """Whole configs: the top level of `SearchConfig`, its sections, `trial` and `space`."""
    top = {}
    for f in dataclasses.fields(schema.SearchConfig):
        hint = typing.get_type_hints(schema.SearchConfig)[f.name]
        if f.name in schema.SECTIONS:
            top[f.name] = st.one_of(section(schema.SECTIONS[f.name], base), junk)
        elif f.name == "space":
            top[f.name] = st.one_of(
                st.dictionaries(st.sampled_from(SPACE_KEYS + ["nope"]), domains, max_size=4), junk
            )
        elif f.name == "trial":
            top[f.name] = st.one_of(section(TrialConfig, base), junk)
        elif f.name == "name":
            top[f.name] = st.one_of(st.just("fuzz"), junk)
        elif f.name == "dataset":
            top[f.name] = st.one_of(st.sampled_from(["mnist5k", "cifar10", "imagefolder"]), junk)
        else:
            top[f.name] = value_for(f.name, hint, f.default, base)
    required = {"name": st.just("fuzz"), "dataset": st.just("mnist5k")}
    # The demo with one key (or a key of one section) changed: most checks are reached only
    # by a config that is right everywhere else.
    one_top = st.sampled_from(sorted(top)).flatmap(
        lambda key: top[key].map(lambda value: {**DEMO, key: value})
    )
    one_deep = st.sampled_from(sorted(schema.SECTIONS) + ["trial"]).flatmap(
        lambda key: section(schema.SECTIONS.get(key, TrialConfig), base).map(
            lambda value: {**DEMO, key: {**(DEMO.get(key) or {}), **value}}
        )
    )
    # Every path, URI and number of the demo drawn anew: the checks after validation.
    places = st.fixed_dictionaries(
        {
            "storage_path": paths(base),
            "cache_dir": st.one_of(st.none(), paths(base)),
            "mlflow": uris(base).map(lambda uri: {"tracking_uri": uri}),
        }
    ).map(lambda changes: {**DEMO, **changes})
    return st.one_of(
        places,
        one_top,
        one_deep,
        st.fixed_dictionaries(
            required, optional={k: v for k, v in top.items() if k not in required}
        ),
        st.fixed_dictionaries({}, optional=top),
        junk,  # a file whose top level is not a mapping at all
    )


def key_paths() -> set[str]:
    """Every key path of the schema, dotted (`search.stop.plateau.patience`)."""
    out = set()

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            path = f"{prefix}{f.name}"
            out.add(path)
            nested = [t for t in kind_of(hints[f.name]) if dataclasses.is_dataclass(t)]
            for t in nested:
                walk(t, f"{path}.")

    walk(schema.SearchConfig, "")
    for name in SPACE_KEYS:
        out.update({f"space.{name}", f"trial.{name}", name})
    return out


KEY_PATHS = key_paths()
SET_KEYS = sorted(KEY_PATHS) + ["search.speed", "space", "", "a..b", "trial."]


@functools.cache
def set_strings() -> st.SearchStrategy:
    """`--set` strings: schema keys with YAML-ish values, and malformed ones."""
    values = st.one_of(
        junk.map(
            lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
        ),
        st.sampled_from(["[unclosed", "{a: }", "!!python/object:os.system", "nan", ".inf", "-"]),
    )
    keyed = st.tuples(st.sampled_from(SET_KEYS), values).map(lambda kv: f"{kv[0]}={kv[1]}")
    return st.lists(st.one_of(keyed, st.sampled_from(["epochs", "=", "==", "x=y=z"])), max_size=3)


def names_a_key(line: str, data: typing.Any, sets: list[str], path: Path) -> bool:
    """Whether an error line names a key path: of the schema, of the config or of a --set;
    or the file itself, for a file whose top level is not a mapping (the root key path)."""
    if f"{path}:" in line or "error: top level:" in line:  # the file, or its root mapping
        return True
    given_keys = set()
    if isinstance(data, dict):
        for key, value in data.items():
            given_keys.add(str(key))
            if isinstance(value, dict):
                given_keys.update(f"{key}.{sub}" for sub in value)
    given_keys.update(s.split("=", 1)[0] for s in sets)
    words = set(re.findall(r"[\w.\-]+", line))
    # a path under a given key names it too: `resources.0` names `resources`
    words |= {w.rsplit(".", n)[0] for w in list(words) for n in range(1, w.count(".") + 1)}
    return (
        any(
            k and (k in words or f"{k}:" in line or f"'{k}'" in line)
            for k in KEY_PATHS | given_keys
        )
        or "--set" in line
    )


class Checked(DriverError):
    """Where `run` would take the experiment's lock: every check has passed."""

    exit_code = ExitCode.OK


@pytest.fixture
def fuzz_dir(tmp_path, monkeypatch):
    (tmp_path / "plain-file").write_text("a file where a folder is expected")
    monkeypatch.chdir(tmp_path)

    # `run` stops where it would lock the experiment (and then start Ray): after its checks.
    def stop(*args, **kwargs):
        raise Checked("checks passed")

    monkeypatch.setattr("tune.driver.experiment_lock", stop)
    return tmp_path


def check_one(command: str, data: typing.Any, sets: list[str], base: Path, capsys) -> int:
    path = base / "search.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    argv = [command, str(path), *[a for s in sets for a in ("--set", s)]]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out, err = capsys.readouterr()
    ERRORS.append(err.strip().splitlines()[-1] if err.strip() else "")
    assert code in (0, 2, 3), (code, argv, data, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out, (argv, data, err[-3000:])
    if code == 2:
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1, (data, sets, err)
        assert names_a_key(errors[0], data, sets, path), (data, sets, errors[0])
    return code


FOUND: dict[str, list[int]] = {}
ERRORS: list[str] = []


@seed(int(os.environ.get("FUZZ_SEED", "20261206")))
@FUZZ
@given(data=st.data())
def test_validate_never_raises_and_names_the_key(fuzz_dir, capsys, data):
    config = data.draw(search_configs(fuzz_dir), label="config")
    sets = data.draw(set_strings(), label="--set")
    FOUND.setdefault("validate", []).append(check_one("validate", config, sets, fuzz_dir, capsys))


@seed(int(os.environ.get("FUZZ_SEED", "20261206")) + 1)
@FUZZ
@given(data=st.data())
def test_run_stops_before_ray_with_one_line(fuzz_dir, capsys, data):
    config = data.draw(search_configs(fuzz_dir), label="config")
    sets = data.draw(set_strings(), label="--set")
    FOUND.setdefault("run", []).append(check_one("run", config, sets, fuzz_dir, capsys))


def config_bytes() -> st.SearchStrategy:
    """The demo's file as bytes, damaged the ways a file on disk can be: bytes inserted
    anywhere (not UTF-8, NUL, control characters, a byte-order mark), a line repeated (a key
    given twice), aliases that expand, or bytes alone."""
    text = DEMO_PATH.read_bytes()
    lines = text.splitlines(keepends=True)
    odd = st.one_of(
        st.binary(min_size=1, max_size=4),
        st.sampled_from([b"\x00", b"\x07", b"\x1b", b"\t", b"\r", b"\xef\xbb\xbf", b"\xff\xfe"]),
    )
    inserted = st.tuples(st.integers(0, len(text)), odd).map(
        lambda at: text[: at[0]] + at[1] + text[at[0] :]
    )
    repeated = st.tuples(st.integers(0, len(lines) - 1), st.integers(0, len(lines))).map(
        lambda ij: b"".join(lines[: ij[1]] + [lines[ij[0]]] + lines[ij[1] :])
    )
    levels = st.integers(1, 9).map(
        lambda n: (
            text
            + b"".join(
                f"l{k}: &l{k} [{', '.join([f'*l{k - 1}' if k else 'x'] * 10)}]\n".encode()
                for k in range(n)
            )
        )
    )
    return st.one_of(inserted, repeated, levels, st.binary(max_size=64))


@seed(int(os.environ.get("FUZZ_SEED", "20261206")) + 2)
@FUZZ
@given(raw=config_bytes())
def test_a_damaged_file_is_one_line_or_fine(fuzz_dir, capsys, raw):
    path = fuzz_dir / "search.yaml"
    path.write_bytes(raw)
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code in (0, 2, 3), (code, raw, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out, (raw, err[-3000:])
    if code == 2:
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1, (raw, err)
    FOUND.setdefault("bytes", []).append(code)


def test_the_fuzzer_reaches_every_outcome():
    """Not a fuzzer that only ever meets the first check: valid configs pass (0), bad ones
    are refused (2), and unreachable servers are met (3)."""
    codes = FOUND.get("validate", []) + FOUND.get("run", [])
    if not codes:
        pytest.skip("run with the fuzz tests")
    assert {0, 2} <= set(codes), sorted(set(codes))
    assert {0, 2} <= set(FOUND.get("bytes", [])), sorted(set(FOUND.get("bytes", [])))
