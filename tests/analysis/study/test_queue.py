"""DVC's queue (and `dvc exp run --temp`) is refused in one line that points at `make study`:
its copy of the repo lacks the gitignored data (README: Studies and results)."""

import time

import pytest

from conftest import PIPELINE_RUN, copy_code, git_repo_copy, run_stage, sh, write_params

REFUSAL = "error: dvc exp run --queue (or --temp) is not supported here"


def test_the_validate_stage_refuses_to_run_in_dvcs_temp_workspaces(tmp_path):
    queued = copy_code(tmp_path / "repo/.dvc/tmp/exps/tmpab12cd")  # where DVC's queue runs it
    write_params(queued, {"norm": "ln"})
    refused = run_stage(queued, "validate")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(REFUSAL) and refused.stderr.count("\n") == 1
    assert "`make study`" in refused.stderr
    assert not (queued / "model/params.json").exists()  # stopped before writing anything


@pytest.mark.slow
def test_a_queued_experiment_fails_with_that_one_line_in_its_log(tmp_path):
    repo = git_repo_copy(tmp_path / "repo", PIPELINE_RUN)
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "norm=ln", "-n", "queued-ln")
    sh(repo, "dvc", "queue", "start")
    deadline = time.monotonic() + 300
    while "Failed" not in (status := sh(repo, "dvc", "queue", "status")):
        assert time.monotonic() < deadline and "Success" not in status, status
        time.sleep(2)
    log = sh(repo, "dvc", "queue", "logs", "queued-ln")
    assert REFUSAL in log and "make study" in log
    sh(repo, "dvc", "queue", "stop")
