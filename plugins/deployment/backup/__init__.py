"""The backup: taken before production changes (``take``), read back as the restore point a
rollback returns to (``restore_point``)."""
