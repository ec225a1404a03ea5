"""The Step Functions adapter: ensemble executions and task-token callbacks."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chorus.core import settings
from chorus.core.clients import client
from chorus.core.errors import DispatchFailed

# A token that is already spent: the task finished, timed out, or its execution stopped.
SPENT_TOKEN_ERRORS = frozenset({"TaskDoesNotExist", "InvalidToken", "TaskTimedOut"})
# StartExecution errors that no retry can heal: the prediction fails at once instead of waiting
# for its message to be retried into the dead-letter queue.
PERMANENT_START_ERRORS = frozenset(
    {
        "StateMachineDoesNotExist",
        "StateMachineDeleting",
        "InvalidArn",
        "InvalidName",
        "InvalidExecutionInput",
        "ValidationException",
        "AccessDeniedException",
        "KmsAccessDeniedException",
        "KmsInvalidStateException",
    }
)


def state_machine_arn(ensemble_name: str) -> str:
    return settings.load(settings.ExecutionSettings).state_machine_arn_prefix + ensemble_name


def start(ensemble_name: str, execution_name: str, document: dict[str, Any]) -> str:
    """Start (or find) the execution named after the prediction: a retry never starts a second one."""
    arn = state_machine_arn(ensemble_name)
    sfn = client("stepfunctions")
    try:
        response = sfn.start_execution(stateMachineArn=arn, name=execution_name, input=json.dumps(document))
    except sfn.exceptions.ExecutionAlreadyExists:
        return arn.replace(":stateMachine:", ":execution:") + f":{execution_name}"
    except ClientError as exc:
        error = exc.response["Error"]
        if error.get("Code") in PERMANENT_START_ERRORS:
            raise DispatchFailed(
                f"the ensemble {ensemble_name!r} could not be started: {error.get('Code')}: {error.get('Message', '')}"
            ) from exc
        raise
    return str(response["executionArn"])


def start_approval(execution_name: str, document: dict[str, Any]) -> str:
    """Start a version's approval workflow (one per version: a retry finds the same execution)."""
    arn = settings.load(settings.ApprovalWorkflowSettings).approval_state_machine_arn
    sfn = client("stepfunctions")
    try:
        response = sfn.start_execution(stateMachineArn=arn, name=execution_name, input=json.dumps(document))
    except sfn.exceptions.ExecutionAlreadyExists:
        return arn.replace(":stateMachine:", ":execution:") + f":{execution_name}"
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
