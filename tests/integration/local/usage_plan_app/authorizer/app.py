"""A REQUEST authorizer that allows everything and names the usage plan key the bearer token says:
`Bearer key:<value>` → usageIdentifierKey <value>; `Bearer none` → no key."""


def handler(event, context):
    token = event["headers"].get("Authorization", "").removeprefix("Bearer ")
    result = {
        "principalId": "caller",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*"}],
        },
    }
    if token.startswith("key:"):
        result["usageIdentifierKey"] = token.removeprefix("key:")
    return result
