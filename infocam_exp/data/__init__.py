"""DataModules and datasets. Each DataModule is a ``ClassificationDataModule`` (see ``base``)."""
