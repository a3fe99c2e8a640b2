"""The Ray side of a search: Ray itself, the `Tuner`, its callbacks, algorithms and stoppers.

`tuner` starts or joins Ray and builds, restores and fits the `Tuner`; `callbacks` are the
driver-side Ray Tune callbacks that need no tracking; `algorithms` maps searcher and scheduler
names to Ray's builders; `stopping` ends a whole search once it is good enough.

May import Ray, `tune.config` and the flat helpers (`outcomes`, `summary`, `paths`, `logs`, ...);
never `mlflow` nor `tune.tracking`: the MLflow trial callback is built by the tracking wing
(`tune.tracking.MlflowTrialCallback`) and handed to the fit ready made.
"""
