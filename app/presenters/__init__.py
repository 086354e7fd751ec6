"""Presenters: small objects that bind the Qt-free session to the viewer's widgets, one concern
each (as napari's layer controls observe their layer). Each subscribes to the session's events
and to its widgets' signals, and calls the session; none calls another presenter.

``base.Context`` is what they share: the session, the main window, the job runner, the engine
cache and the settings. :mod:`app.workbench` composes them.
"""
