"""One trial's code: its config, data, augmentation, model and epoch loop, and the Tune glue."""
