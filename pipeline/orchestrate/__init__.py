"""Orchestration: the daily batch DAG's building blocks (its tasks, alerts, the publish step), a
client of Airflow's REST API and the MWAA bundle. Airflow's local processes are part of the local
stack (`pipeline.stack.airflow`). Only `pipeline.orchestrate.dag` imports Airflow."""
