"""A REQUEST authorizer whose answer is chosen by the bearer token (what the tests need to see)."""

import uuid

BASE = "arn:aws:execute-api:*:*:*/*/"


def policy(principal, allow, deny=(), event=None, **context):
    statements = [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [BASE + r for r in allow]}]
    if deny:
        statements.append({"Action": "execute-api:*", "Effect": "Deny", "Resource": [BASE + r for r in deny]})
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": {
            "invocation": str(uuid.uuid4()),  # tells a cached result from a new one
            "type": event["type"],
            "methodArn": event["methodArn"],
            "resource": event["resource"],
            **context,
        },
    }


def handler(event, context):
    token = event["headers"].get("Authorization", "").removeprefix("Bearer ")
    if token == "read":
        return policy("user-read", ["GET/items", "GET/items/*"], event=event, tenant="t1", n=7, flag=True)
    if token == "all-but-secret":
        return policy("user-deny", ["*"], deny=["GET/items/secre?"], event=event)
    if token == "boom":
        raise RuntimeError("the token store is down")
    if token == "malformed":
        return {"principalId": "x"}
    raise Exception("Unauthorized")
