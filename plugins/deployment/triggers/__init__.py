"""Triggers of the release: the triggerer, not a worker, waits on CloudFormation, Amplify and metrics.

Each serializes the fields it declares (``_base.FieldsTrigger``) to
``("deployment.triggers.<module>.<Class>", JSON-safe kwargs)``,
rebuilds its boto3 client inside ``run()`` (in a thread: the hooks' clients are
synchronous), sleeps with ``asyncio.sleep`` and yields exactly one event whose
``status`` is ``success`` or ``error`` (the metric watch: ``healthy``, ``breach``,
``insufficient_data`` or ``error``). Deadlines are absolute epoch seconds, so a
trigger resumed by another triggerer keeps the original timeout.
"""
