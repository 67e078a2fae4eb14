"""CloudFormation through change sets: plan (what will be created, changed, replaced), apply.

A change set with no changes is reported as such (CloudFormation marks it FAILED with "didn't
contain changes") and deleted, so re-running a deploy with nothing new changes nothing. A
CREATE change set that is only planned is deleted with the empty stack CloudFormation made for
it, so planning leaves no trace.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError, WaiterError

from pipeline.deploy import templates
from pipeline.deploy.errors import DeployError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
GONE = {"DELETE_COMPLETE"}
# a stack in one of these can be updated; anything else needs a look first
STABLE = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}


@dataclass
class ResourceChange:
    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    replacement: str = ""  # True | False | Conditional (Modify only)

    def describe(self) -> str:
        verb = {"Add": "create", "Modify": "change", "Remove": "delete"}.get(self.action, "")
        if self.action == "Modify" and self.replacement in ("True", "Conditional"):
            verb = "REPLACE" if self.replacement == "True" else "maybe replace"
        return f"{verb or self.action.lower()} {self.logical_id} ({self.resource_type})"


@dataclass
class StackPlan:
    """What applying one stack will do."""

    component: str
    stack_name: str
    action: str  # create | update | none | create-later | update-later
    changes: list[ResourceChange] = field(default_factory=list)
    change_set_id: str = ""
    waiting_for: str = ""  # the input not known yet (…-later actions)

    @property
    def changes_anything(self) -> bool:
        return self.action != "none"


def stack_status(cfn: CloudFormationClient, stack_name: str) -> str | None:
    """The stack's status, or None when there is no such stack."""
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    status = stacks[0]["StackStatus"] if stacks else None
    if status in GONE:
        return None
    if status == "REVIEW_IN_PROGRESS":  # an earlier plan's empty stack: nothing deployed
        return None
    return status


def stack_outputs(cfn: CloudFormationClient, stack_name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def template_changes(template: templates.Template) -> list[ResourceChange]:
    """A stack not creatable yet: every resource of its template will be created."""
    return [
        ResourceChange("Add", logical_id, resource["Type"])
        for logical_id, resource in template["Resources"].items()
    ]


def _wait_change_set(cfn: CloudFormationClient, change_set_id: str, delay_s: int) -> Any:
    deadline = time.monotonic() + 600
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        if time.monotonic() > deadline:
            raise DeployError(
                f"change set {change_set_id} still {described['Status']} after 10 min"
            )
        time.sleep(min(delay_s, 5))


def _changes(described: Any) -> list[ResourceChange]:
    changes = []
    for change in described.get("Changes", []):
        resource = change.get("ResourceChange", {})
        changes.append(
            ResourceChange(
                action=resource.get("Action", ""),
                logical_id=resource.get("LogicalResourceId", ""),
                resource_type=resource.get("ResourceType", ""),
                replacement=str(resource.get("Replacement", "")),
            )
        )
    return changes


def plan_stack(
    cfn: CloudFormationClient,
    component: str,
    stack_name: str,
    template: templates.Template,
    parameters: dict[str, str],
    capabilities: list[str],
    delay_s: int = 5,
) -> StackPlan:
    """Create a change set for the stack and describe it (nothing is executed)."""
    status = stack_status(cfn, stack_name)
    if status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {stack_name} failed to create (ROLLBACK_COMPLETE): see its events, delete it "
            "(make destroy) and deploy again"
        )
    if status is not None and status not in STABLE:
        raise DeployError(f"stack {stack_name} is {status}: wait for it or fix it in the console")
    change_set_type: Literal["CREATE", "UPDATE"] = "UPDATE" if status else "CREATE"
    try:
        created = cfn.create_change_set(
            StackName=stack_name,
            ChangeSetName=f"pinpipe-{uuid.uuid4().hex[:12]}",
            ChangeSetType=change_set_type,
            TemplateBody=templates.body(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=capabilities,  # type: ignore[arg-type]
            Tags=[{"Key": "pinpipe:stack", "Value": stack_name}],
        )
    except ClientError as error:
        # CloudFormation reports "no changes" on the change set; some AWS stand-ins refuse the call
        if any(marker in str(error) for marker in NO_CHANGES):
            return StackPlan(component, stack_name, "none")
        raise DeployError(
            f"CloudFormation refused the change set of {stack_name}: {error}"
        ) from None
    described = _wait_change_set(cfn, created["Id"], delay_s)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        cfn.delete_change_set(ChangeSetName=created["Id"])
        if any(marker in reason for marker in NO_CHANGES):
            return StackPlan(component, stack_name, "none")
        raise DeployError(f"CloudFormation rejected the change set of {stack_name}: {reason}")
    return StackPlan(
        component,
        stack_name,
        change_set_type.lower(),
        changes=_changes(described),
        change_set_id=created["Id"],
    )


def discard(cfn: CloudFormationClient, plan: StackPlan) -> None:
    """Drop a planned change set (and the empty stack a CREATE change set made)."""
    if not plan.change_set_id:
        return
    cfn.delete_change_set(ChangeSetName=plan.change_set_id)
    if plan.action == "create":
        cfn.delete_stack(StackName=plan.stack_name)
    plan.change_set_id = ""


def execute(cfn: CloudFormationClient, plan: StackPlan, delay_s: int) -> None:
    """Execute the planned change set and wait until the stack is complete."""
    if not plan.change_set_id:
        return
    cfn.execute_change_set(ChangeSetName=plan.change_set_id)
    plan.change_set_id = ""  # executed: nothing left to discard
    waiter_name = "stack_create_complete" if plan.action == "create" else "stack_update_complete"
    try:
        cfn.get_waiter(waiter_name).wait(  # type: ignore[call-overload]
            StackName=plan.stack_name,
            WaiterConfig={"Delay": delay_s, "MaxAttempts": 7200 // delay_s},
        )
    except WaiterError as error:
        raise DeployError(
            f"stack {plan.stack_name} did not complete: {_failure_reason(cfn, plan.stack_name)}"
        ) from error


def _failure_reason(cfn: CloudFormationClient, stack_name: str) -> str:
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError as error:
        return str(error)
    for event in events:
        if event.get("ResourceStatus", "").endswith("FAILED"):
            return f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason', '')}"
    return "see the stack's events in the console"


def delete_stack(cfn: CloudFormationClient, stack_name: str, delay_s: int) -> bool:
    """Delete the stack and wait; False when there was none."""
    try:
        cfn.describe_stacks(StackName=stack_name)
    except ClientError as error:
        if "does not exist" in str(error):
            return False
        raise
    cfn.delete_stack(StackName=stack_name)
    try:
        cfn.get_waiter("stack_delete_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": delay_s, "MaxAttempts": 7200 // delay_s}
        )
    except WaiterError as error:
        raise DeployError(
            f"stack {stack_name} was not deleted: {_failure_reason(cfn, stack_name)}"
        ) from error
    return True
