"""The aws target: CloudFormation stacks of a stage, their artifacts, and the Databricks jobs.

`pinpipe deploy plan|apply|destroy` (and `make deploy-plan | deploy | destroy`) act on one
stage: stacks `pinpipe-<stage>-<component>` from the templates in deploy/cloudformation/,
planned as change sets, applied after confirmation, with each component's configuration taken
from the stage's stack outputs (`pipeline.deploy.components`).
"""
