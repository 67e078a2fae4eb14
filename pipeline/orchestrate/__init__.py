"""Orchestration: the daily batch DAG's building blocks, Airflow in the local stack, `pinpipe demo`
and the MWAA bundle. Only `pipeline.orchestrate.dag` imports Airflow; the rest is plain Python."""
