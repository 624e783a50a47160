"""Deferrable operators of phases 5-8: ``execute()`` does the instant work, then defers to a trigger.

``execute_complete()`` checks the trigger's event, writes the task's part of the
deployment record, and raises with the reason when the event reports a failure.
"""
