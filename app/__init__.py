"""mammolens application: CLI, Qt-free study model and DICOM loading, GUI wiring."""
