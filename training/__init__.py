"""Training side of mammolens: the phantom simulator, datasets, networks and training loops."""
