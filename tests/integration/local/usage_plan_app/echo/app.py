"""Echo the proxy event, so the tests see requestContext.authorizer."""

import json


def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}
