"""The Step Functions adapter: ensemble executions and task-token callbacks."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chorus.aws import client
from chorus.settings import get_settings

# A token that is already spent: the task finished, timed out, or its execution stopped.
SPENT_TOKEN_ERRORS = frozenset({"TaskDoesNotExist", "InvalidToken", "TaskTimedOut"})


def state_machine_arn(ensemble_name: str) -> str:
    return get_settings().state_machine_arn_prefix + ensemble_name


def start(ensemble_name: str, execution_name: str, document: dict[str, Any]) -> str:
    """Start (or find) the execution named after the prediction: a retry never starts a second one."""
    arn = state_machine_arn(ensemble_name)
    sfn = client("stepfunctions")
    try:
        response = sfn.start_execution(stateMachineArn=arn, name=execution_name, input=json.dumps(document))
    except sfn.exceptions.ExecutionAlreadyExists:
        execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{execution_name}"
        return execution_arn
    return str(response["executionArn"])


def stop(execution_arn: str, cause: str) -> None:
    sfn = client("stepfunctions")
    try:
        sfn.stop_execution(executionArn=execution_arn, error="Canceled", cause=cause)
    except sfn.exceptions.ExecutionDoesNotExist:
        return


def send_success(task_token: str, output: dict[str, Any]) -> bool:
    """Resume a waiting step; False if the token was already spent (a duplicate or a timeout)."""
    return _send(lambda sfn: sfn.send_task_success(taskToken=task_token, output=json.dumps(output)))


def send_failure(task_token: str, error: str, cause: str) -> bool:
    return _send(lambda sfn: sfn.send_task_failure(taskToken=task_token, error=error[:256], cause=cause[:32768]))


def _send(call: Any) -> bool:
    try:
        call(client("stepfunctions"))
    except ClientError as exc:
        if exc.response["Error"].get("Code") in SPENT_TOKEN_ERRORS:
            return False
        raise
    return True
