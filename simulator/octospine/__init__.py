"""OCTOSPINE: health, pipelines, automations, integrations, tasks, webhooks (`/api`, `/ws`)."""
