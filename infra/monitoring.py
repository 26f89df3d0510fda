"""Log Analytics + workspace-based Application Insights; the connection string goes to the app."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights


@dataclass(kw_only=True)
class MonitoringArgs:
    """Inputs of Monitoring."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    workspace_name: pulumi.Input[str]
    insights_name: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    retention_days: int = 30


class Monitoring(pulumi.ComponentResource):
    """One workspace per stack: App Insights telemetry and App Service logs land together."""

    workspace_id: pulumi.Output[str]
    connection_string: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = operationalinsights.Workspace(
            f"{name}-workspace",
            workspace_name=args.workspace_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(
                name=operationalinsights.WorkspaceSkuNameEnum.PER_GB2018
            ),
            retention_in_days=args.retention_days,
            tags=args.tags,
            opts=child,
        )
        self.insights = applicationinsights.Component(
            f"{name}-insights",
            resource_name_=args.insights_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type=applicationinsights.ApplicationType.WEB,
            ingestion_mode=applicationinsights.IngestionMode.LOG_ANALYTICS,
            workspace_resource_id=self.workspace.id,
            tags=args.tags,
            opts=child,
        )
        self.workspace_id = self.workspace.id
        self.connection_string = self.insights.connection_string
        self.register_outputs(
            {
                "workspace_id": self.workspace_id,
                "connection_string": self.connection_string,
            }
        )
