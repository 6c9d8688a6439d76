"""convey from Airflow: the nightly run of the jobs tagged "nightly", then a check of what is left.

convey is a CLI with exit codes, so a BashOperator is all it takes. Airflow fails a task on any
non-zero exit code except the one given as skip_on_exit_code, which marks it skipped: 75 means another
run holds the job (the only job named here), which is not a failure of this DAG.

Exit codes: 0 done; 1 conversions failed (sent first by the next run: let the retry do it);
2 a job's config or mapping is broken (a human must fix it: retrying does not help); 3 a source
could not be read; 4 the state store could not be reached; 75 held by another run (skipped);
130/143 stopped by a signal. With several jobs selected the code is the worst of them.
"""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

ENV = {
    "CONVEY_ENV": "production",
    # From an Airflow connection or a secrets backend, never written here.
    "WAREHOUSE_URL": "{{ conn.warehouse.get_uri() }}",
    "CONVEY_STATE_URL": "{{ conn.convey_state.get_uri() }}",
    "OPTIMIZELY_ACCOUNT_ID": "{{ var.value.optimizely_account_id }}",
    "CONVEY_HOSTNAME": "airflow-{{ ti.hostname }}",
}

with DAG(
    dag_id="convey_nightly",
    schedule="15 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
) as dag:
    nightly = BashOperator(
        task_id="convey_run_nightly",
        cwd="/opt/convey-jobs",
        bash_command="npx convey run --select tag:nightly --parallel 4 --json",
        env=ENV,
        append_env=True,
    )
    refunds = BashOperator(
        task_id="convey_run_refunds",
        cwd="/opt/convey-jobs",
        bash_command="npx convey run refunds --json",
        env=ENV,
        append_env=True,
        skip_on_exit_code=75,
    )
    status = BashOperator(
        task_id="convey_status",
        cwd="/opt/convey-jobs",
        bash_command="npx convey status --select tag:nightly",
        env=ENV,
        append_env=True,
        trigger_rule="all_done",
    )
    [nightly, refunds] >> status
