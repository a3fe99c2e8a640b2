"""The `cnn-tune` subcommands, one module per group: searches, single trials, the MLflow store."""
