"""Automation on the Pi: groups and scenes, schedules, rules and notifications.

A client of the board, like an adapter: every change it makes takes the board's one path
(:meth:`~pinpanel.board.Board.command` / :meth:`~pinpanel.board.Board.apply`) with an
actor that says who decided it. The board never imports this package.
"""
