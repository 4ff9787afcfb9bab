"""Deterministic OCTOSPINE seed data, shaped like the examples of the OCTOSPINE guide.

Three integrations (database, cloud storage, API, with secrets in `configuration`), three
pipelines, three automations, six tasks in every finished and unfinished state (they do not
run; only tasks created later do) and two webhooks (the outgoing one inactive, so nothing is
sent until a test or `webhook_targets` asks for it). The `data_sync` tasks and the first
automation's `create_task` step name the CRM Mirror pipeline in `parameters.pipeline_id`
(what GraphQL's `Pipeline.recent_tasks` and `Pipeline.automations` follow).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from simulator.octospine.services import OctospineStores
from simulator.wire import JsonObject, format_timestamp


def seed_octospine(stores: OctospineStores, *, epoch: datetime) -> None:
    """Fills empty stores with the seed data."""

    def at(hours_ago: float) -> str:
        return format_timestamp(epoch - timedelta(hours=hours_ago))

    def add(store_name: str, resource: JsonObject, hours_ago: float) -> str:
        store = getattr(stores, store_name)
        resource_id: str = store.new_id()
        stamps = {"created_at": at(hours_ago)}
        if store_name != "webhooks":
            stamps["updated_at"] = at(hours_ago)
        store.add({"id": resource_id, **resource, **stamps})
        return resource_id

    db = add(
        "integrations",
        {
            "type": "database",
            "name": "External Database",
            "configuration": {
                "type": "postgresql",
                "host": "db.example.internal",
                "port": 5432,
                "database": "crm",
                "username": "octo_sync",
                "password": "s3cr3t-db-password",
            },
            "status": "active",
        },
        720,
    )
    s3 = add(
        "integrations",
        {
            "type": "cloud_storage",
            "name": "AWS S3",
            "configuration": {
                "provider": "aws",
                "region": "us-east-1",
                "bucket": "octo-ingest",
                "access_key": "AKIASIMULATED0001",
                "secret_key": "simulated/secret+key",
            },
            "status": "active",
        },
        700,
    )
    api = add(
        "integrations",
        {
            "type": "api",
            "name": "External Service API",
            "configuration": {
                "base_url": "https://api.external-service.example",
                "authentication": {
                    "type": "oauth2",
                    "client_id": "ext-client",
                    "client_secret": "ext-client-secret",
                    "token_url": "https://api.external-service.example/oauth/token",
                },
            },
            "status": "error",
        },
        680,
    )

    add(
        "pipelines",
        {
            "name": "External Data Pipeline",
            "description": "Pulls partner data, cleans and stores it",
            "source": {
                "type": "api",
                "endpoint": "https://partner.example/data",
                "authentication": {"type": "bearer", "token": "partner-api-token"},
            },
            "transformations": [
                {"type": "clean", "parameters": {"removeNulls": True}},
                {"type": "validate", "parameters": {"schema": "partner-v2"}},
                {"type": "enrich", "parameters": {"enrichments": ["geolocation"]}},
            ],
            "destination": {"type": "database", "table": "processed_data"},
            "status": "active",
            "schedule": {"type": "cron", "value": "0 */6 * * *"},
        },
        600,
    )
    crm = add(
        "pipelines",
        {
            "name": "CRM Mirror",
            "source": {"type": "database", "connection_id": db, "query": "SELECT * FROM accounts"},
            "transformations": [{"type": "clean", "parameters": {"trim": True}}],
            "destination": {"type": "database", "table": "crm_accounts"},
            "status": "paused",
            "schedule": {"type": "interval", "value": 3600},
        },
        500,
    )
    add(
        "pipelines",
        {
            "name": "Log Archive",
            "source": {"type": "file", "parameters": {"path": "s3://octo-ingest/logs/"}},
            "transformations": [],
            "destination": {"type": "api", "endpoint": "https://archive.example/ingest"},
            "status": "failed",
        },
        400,
    )

    add(
        "automations",
        {
            "name": "External Event Handler",
            "triggers": [{"type": "webhook", "endpoint": "/webhooks/external-event", "method": "POST"}],
            "steps": [
                {
                    "name": "process_event",
                    "type": "transform",
                    "parameters": {"mapping": {"external_id": "internal_id"}},
                },
                {
                    "name": "create_task",
                    "type": "task",
                    "parameters": {
                        "template": "data_processing",
                        "variables": "{{process_event.output}}",
                        "pipeline_id": crm,
                    },
                },
            ],
            "status": "enabled",
        },
        300,
    )
    add(
        "automations",
        {
            "name": "S3 File Processor",
            "triggers": [{"type": "cloud_event", "integration_id": s3, "event": "object_created"}],
            "steps": [
                {"name": "download_file", "type": "cloud_download", "parameters": {"integration_id": s3}},
                {"name": "process_file", "type": "file_processing", "parameters": {"operations": ["parse"]}},
            ],
            "status": "enabled",
        },
        290,
    )
    add(
        "automations",
        {
            "name": "Nightly Cleanup",
            "triggers": [{"type": "schedule", "schedule": {"type": "cron", "value": "0 3 * * *"}}],
            "steps": [{"name": "purge", "type": "task", "parameters": {"template": "purge_temp"}}],
            "status": "disabled",
        },
        280,
    )

    task_states: list[tuple[str, str, JsonObject]] = [
        ("Database Sync", "data_sync", {"status": "completed", "progress": 100,
         "result": {"records_processed": 1200}, "started_at": at(47.9), "completed_at": at(47.5)}),
        ("External API Data Processor", "api_processing", {"status": "failed", "progress": 60,
         "error": "upstream answered 503", "started_at": at(30), "completed_at": at(29.8)}),
        ("CRM Export", "data_sync", {"status": "running", "progress": 40, "started_at": at(0.2)}),
        ("Report Build", "report", {"status": "pending", "progress": 0}),
        ("Old Import", "data_sync", {"status": "cancelled", "progress": 20,
         "started_at": at(72), "completed_at": at(71.9)}),
        ("Hourly Sync", "data_sync", {"status": "completed", "progress": 100,
         "result": {"records_processed": 80}, "started_at": at(1.1), "completed_at": at(1.0)}),
    ]  # fmt: skip
    schedules: list[JsonObject | None] = [
        {"type": "interval", "value": 3600},
        {"type": "cron", "value": "0 */6 * * *"},
        None,
        None,
        None,
        {"type": "interval", "value": 3600},
    ]
    for index, ((name, kind, state), schedule) in enumerate(zip(task_states, schedules, strict=True)):
        parameters: JsonObject = {"source": {"type": "database", "connection_id": db}}
        if kind == "data_sync":
            parameters["pipeline_id"] = crm  # the syncs feed the CRM Mirror pipeline
        if kind == "api_processing":
            parameters = {"integration_id": api, "endpoint": "/data/endpoint", "method": "GET"}
        task: JsonObject = {"name": name, "type": kind, "parameters": parameters}
        if schedule:
            task["schedule"] = schedule
        add("tasks", {**task, **state}, 48 - index * 8)

    add(
        "webhooks",
        {
            "name": "External System Webhook",
            "type": "incoming",
            "endpoint": "/webhooks/external-system",
            "events": ["task.completed", "automation.triggered"],
            "authentication": {"type": "hmac", "secret": "incoming-webhook-secret"},
            "active": True,
        },
        200,
    )
    add(
        "webhooks",
        {
            "name": "Notify External System",
            "type": "outgoing",
            "url": "http://127.0.0.1:9/webhooks/octospine",
            "events": ["task.completed", "alert.new"],
            "authentication": {"type": "hmac", "secret": "outgoing-webhook-secret"},
            "headers": {"Authorization": "Bearer external-system-token"},
            "active": False,
        },
        190,
    )
