"""Undoing a release: the rollback's plan and steps, whether this attempt still owns what is live,
and the cancel listener."""
