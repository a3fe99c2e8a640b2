"""cnn-tune's search side: config, Ray Tune driver, MLflow tracking and the CLI."""
