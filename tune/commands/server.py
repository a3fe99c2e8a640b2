"""The `server` command: the team's MLflow tracking server (`tune.tracking.server`)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "server",
        parents=parents,
        help="run the team's MLflow tracking server: PostgreSQL or SQLite, proxied artifacts, "
        "optional logins",
        description="Start MLflow's tracking server as cnn-tune expects it: runs in a database "
        "(PostgreSQL for a team, SQLite for one user), artifacts proxied over HTTP to a folder "
        "or s3:// (drivers and workers need no shared disk or cloud credentials), and with "
        "--logins MLflow's basic-auth app. Secrets come from MLflow's variables only: "
        "MLFLOW_FLASK_SERVER_SECRET_KEY and MLFLOW_AUTH_ADMIN_PASSWORD (or "
        "MLFLOW_AUTH_CONFIG_PATH). Ctrl-C or SIGTERM stops it.",
    )
    p.add_argument(
        "--backend-store-uri",
        default="sqlite:///mlruns.db",
        help="the runs' database: postgresql+psycopg://USER@HOST:PORT/DB (a team; its password "
        "in PGPASSWORD or ~/.pgpass, not here) or sqlite:///FILE (default: %(default)s)",
    )
    p.add_argument(
        "--artifacts-destination",
        default="./mlartifacts",
        help="where the proxied artifacts land: a folder or s3://BUCKET/PREFIX "
        "(default: %(default)s)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the server's worker processes (default: MLflow's, 4; 1 starts in half the time)",
    )
    p.add_argument(
        "--logins",
        action="store_true",
        help="require a user and password (MLflow's basic-auth app; the server extra)",
    )
    p.add_argument(
        "--state-dir",
        default="cnn-tune-server",
        help="where cnn-tune writes the logins' config when MLFLOW_AUTH_CONFIG_PATH names none "
        "(default: %(default)s)",
    )
    p.set_defaults(func=cmd_server)


def cmd_server(args: argparse.Namespace) -> int:
    from tune.tracking import ServerSettings, serve  # MLflow: only for this command

    settings = ServerSettings(
        backend_store_uri=args.backend_store_uri,
        artifacts_destination=args.artifacts_destination,
        host=args.host,
        port=args.port,
        logins=args.logins,
        state_dir=args.state_dir,
        workers=args.workers,
    )
    return serve(settings)
