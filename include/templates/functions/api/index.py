"""The sample application's API function: answers with the release it runs."""

import json
import os


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"version": os.environ["APP_VERSION"]}),
    }
