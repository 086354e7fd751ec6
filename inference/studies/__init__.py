"""Study loading: DICOM (2D, enhanced and legacy DBT), plain image files, the Image model and VOI.

The one place that reads studies, so the CLI, the viewer and training see every image the same
way. Entry point: :func:`inference.studies.study.open_path`.
"""
