"""The `cnn-tune` subcommands, one module per group: searches, single trials, the store, operators.

`search` (run, resume, validate), `trial` (train, stage-data), `store` (ui, report), `operate`
(list, stop, delete, with `folders`, the experiments under a storage path as this host sees
them). They parse flags and call the driver, `tune.config` and `tune.tracking`; they may import
any of tune but `cli`, and nothing of tune imports them but `cli`.
"""
