import os
import subprocess
import sys

SNIPPET = ("import os, riskshare.process as p; p.tune_for_bulk_arrays(); p.tune_for_bulk_arrays(); "
           "import numpy; print(os.environ.get('OPENBLAS_NUM_THREADS'))")


def _run(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | env_extra
    return subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_bulk_commands_start_numpy_with_one_blas_thread():
    assert _run({}) == "1"


def test_an_operators_own_blas_setting_is_kept():
    assert _run({"OPENBLAS_NUM_THREADS": "2"}) == "2"


def test_psi_command_applies_the_settings_before_numpy_loads():
    code = ("import sys; from riskshare.cli import main; sys.argv = ['riskshare', 'psi', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import os, riskshare.process as p; print(p._done, os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "True 1"
