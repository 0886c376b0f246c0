"""The HTTP adapter: Starlette routes over the board core.

Like Starlette's own package, this imports nothing: the app factory is
:func:`pinpanel.web.app.create_app`, and the modules import each other by full path.
"""
