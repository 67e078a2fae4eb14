"""The local stack: real components as local processes under supervisord — the S3 and Kinesis
servers, broker and Connect (`components`), Airflow's processes (`airflow`), and the stages'
workloads (API, stream job, emulators), each named like its compose service."""
