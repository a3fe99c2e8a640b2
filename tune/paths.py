"""Every location: experiment and state folders, the saved config, names and tracking URIs.

Tracking URIs: their precedence, resolution against the cwd, redaction and artifact location.
"""

from __future__ import annotations

import os
import re

from tune.errors import BadInput, SearchConfigError

CONFIG_FILE = "cnn_tune_config.yaml"  # the resolved search config, kept with the experiment
# Experiment names are folder names on every storage and MLflow run names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 of A-Z a-z 0-9 . _ -, not starting with '.'"

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"  # relative to the directory the command runs in
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# MLflow tracking URI schemes (a SQLAlchemy database, a server, a local folder, Databricks).
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")
_BARE_URIS = ("databricks", "databricks-uc", "uc")  # MLflow URIs that are a word, not a path
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_SQLITE = "sqlite:///"


# --- experiments --------------------------------------------------------------------------------


def is_valid_name(name: str) -> bool:
    return isinstance(name, str) and bool(NAME_PATTERN.fullmatch(name))


def check_name(name: str, what: str = "experiment name") -> str:
    """The one name rule, for every command that takes a search's name (run, resume, report,
    stop, delete, search.warm_start): a plain folder name, never a path.

    Raises:
        BadInput (exit 2): `..`, `/`, an absolute path, an empty or overlong name.
    """
    if not is_valid_name(name):
        raise BadInput(f"{what} {name!r} is not a plain name; allowed: {NAME_RULE}")
    return name


def _inside(root: str, path: str) -> bool:
    """Whether `path` lies strictly below `root`, both with every symlink resolved."""
    root, path = os.path.realpath(root), os.path.realpath(path)
    return path != root and os.path.commonpath([root, path]) == root


def locate_experiment(storage_path: str, name: str, what: str = "experiment name") -> str:
    """The state folder of experiment `name` (`state_dir`), checked to stay inside its storage.

    The name must pass `check_name`, and where its folder exists and is a symlink, the link
    must lead to a folder below the storage path (for remote storage: below the state root).
    `storage_path` itself may be a symlink: only what lies below it is confined.

    Raises:
        BadInput (exit 2), before anything is read or removed.
    """
    check_name(name, what)
    folder = state_dir(storage_path, name)
    root = os.path.dirname(folder)
    if os.path.islink(folder) and not _inside(root, folder):
        raise BadInput(
            f"{what} {name!r}: {folder} is a symlink to {os.path.realpath(folder)}, outside "
            f"{root}; allowed: experiment folders inside the storage path"
        )
    return folder


def is_remote(path: str) -> bool:
    """Whether a storage path is a URI (s3://, gs://, file://) that Ray resolves itself."""
    return "://" in path


def absolute(path: str, cwd: str | None = None) -> str:
    """A local path made absolute against `cwd` (default: the current directory), ~ expanded."""
    base = os.getcwd() if cwd is None else cwd
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def resolve_storage_path(path: str, cwd: str | None = None) -> str:
    """A storage path as Ray gets it: URIs as given, local paths absolute."""
    return path if is_remote(path) else absolute(path, cwd)


def experiment_path(storage_path: str, name: str) -> str:
    """Where Ray keeps a search's state: `<storage_path>/<name>`."""
    return f"{storage_path.rstrip('/')}/{name}"


def state_root() -> str:
    """cnn-tune's own state for experiments on remote storage: `$XDG_STATE_HOME/cnn-tune`, else
    `~/.local/state/cnn-tune`. State, not cache: the lock, the saved config and unsent MLflow
    records live there, and tools that clear caches must not take them."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join("~", ".local", "state")
    return os.path.abspath(os.path.expanduser(os.path.join(base, "cnn-tune")))


def legacy_state_dir(name: str) -> str:
    """Where versions before 0.2 kept a remote experiment's state: under the dataset cache."""
    from trainables.cache import default_cache_dir

    return os.path.join(default_cache_dir(), "state", name)


def state_dir(storage_path: str, name: str) -> str:
    """cnn-tune's own files for an experiment (config copy, MLflow run map, lock, outbox).

    Local storage: the experiment folder itself. Remote storage: a local folder keyed by the
    name under `state_root()`; state an older version left under the cache is still found.
    """
    if not is_remote(storage_path):
        return experiment_path(storage_path, name)
    current = os.path.join(state_root(), name)
    legacy = legacy_state_dir(name)
    if not os.path.exists(current) and os.path.exists(legacy):
        return legacy
    return current


def saved_config_path(storage_path: str, name: str) -> str:
    return os.path.join(state_dir(storage_path, name), CONFIG_FILE)


# --- tracking URIs ------------------------------------------------------------------------------


def choose_tracking_uri(given: str | None) -> str:
    """The precedence every command follows: the config's (or flag's) value if given, else
    `$MLFLOW_TRACKING_URI`, else the SQLite file in the current directory."""
    return given or os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI


def sqlite_file(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI (relative or absolute); None for anything else
    (another scheme, `:memory:`, no file)."""
    if not uri.startswith(_SQLITE):
        return None
    rest = uri[len(_SQLITE) :]
    if not rest or rest.startswith(":memory:"):
        return None
    return rest


def is_server_uri(uri: str) -> bool:
    """An http(s) tracking server, as opposed to a store opened in this process."""
    return uri.startswith(("http://", "https://"))


def resolve_tracking_uri(uri: str, cwd: str | None = None) -> str:
    """Make a relative sqlite:///, file: or plain-path tracking URI absolute (against `cwd`).

    Raises:
        SearchConfigError: an empty URI, or a scheme MLflow does not know.
    """
    if not uri:
        raise SearchConfigError(
            "mlflow.tracking_uri",
            "'' is empty; allowed: http(s)://host, sqlite:///file.db, file:path or a path",
        )
    db = sqlite_file(uri)
    if uri.startswith(_SQLITE):
        # sqlite:///rel.db is relative, sqlite:////abs.db absolute; :memory: is not a file.
        return uri if db is None or db.startswith("/") else _SQLITE + absolute(db, cwd)
    if uri.startswith("file:"):
        rest = uri[len("file:") :]
        return uri if rest.startswith("/") else "file://" + absolute(rest, cwd)
    if uri in _BARE_URIS:
        return uri
    scheme = _SCHEME_RE.match(uri)
    if scheme:
        name = scheme.group(0)[:-1].split("+")[0].lower()
        if name not in TRACKING_SCHEMES:
            raise SearchConfigError(
                "mlflow.tracking_uri",
                f"{redact_uri(uri)!r} has an unknown scheme {name!r}; allowed: "
                f"{', '.join(TRACKING_SCHEMES)}, or a plain path",
            )
        return uri
    return absolute(uri, cwd)


# user:secret@ right after a scheme; no spaces inside, so it also finds URIs inside messages.
_PASSWORD_RE = re.compile(r"(://[^/:@\s]*):[^/@\s]*@")


def redact_uri(uri: str) -> str:
    """The URI without a password (user:secret@host -> user:***@host), for logs and tags.

    Also redacts every URI inside a longer text (an exception's message quoting a request URL).
    """
    return _PASSWORD_RE.sub(r"\1:***@", uri)


def redact_webhook(url: str) -> str:
    """A webhook URL with everything after its host hidden: Slack's and Mattermost's secret is
    the path itself (`https://hooks.slack.com/***`)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    return f"{parts.scheme}://{host}{port}/***"


def redact_credentials(plain: dict) -> dict:
    """A search config's `to_dict()` fit to show in MLflow or a log: the tracking URI's
    password and the notify webhook's secret hidden (the saved config keeps both, owner-only,
    for a resume)."""
    shown = {**plain, "mlflow": dict(plain.get("mlflow") or {})}
    if shown["mlflow"].get("tracking_uri"):
        shown["mlflow"]["tracking_uri"] = redact_uri(shown["mlflow"]["tracking_uri"])
    notify = plain.get("notify") or {}
    if notify.get("webhook"):
        shown["notify"] = {**notify, "webhook": redact_webhook(notify["webhook"])}
    return shown


def artifact_location(tracking_uri: str) -> str | None:
    """For an embedded SQLite store, artifacts go beside the database file (absolute); other
    stores choose their own."""
    db = sqlite_file(tracking_uri)
    if db is None:
        return None
    return "file://" + os.path.join(os.path.dirname(os.path.abspath(db)), "mlartifacts")
