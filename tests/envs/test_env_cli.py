"""``servegym simulate --env ... --controller ...``, run in-process."""

from __future__ import annotations

from servegym.cli import main


def test_simulate_env_with_controller_prints_kpis(capsys):
    code = main(
        [
            "simulate",
            "--env",
            "servegym/ChunkedPrefill-v0",
            "--controller",
            "sarathi-static",
            "--horizon",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "servegym/ChunkedPrefill-v0 [llama3-8b-a100-code] SarathiStatic seed 0: return" in out
    for kpi in ("e2e_mean_s", "tbt_p99_s", "ttft_p99_s", "duration_s"):
        assert kpi in out


def test_simulate_spec_env_with_oracle_and_scenario(capsys):
    argv = ["simulate", "--env", "servegym/SpecDecode-v0", "--controller", "spec-lookahead-oracle"]
    argv += ["--scenario", "llama3-8b-1b-code", "--horizon", "5", "--episodes", "2", "--seed", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[llama3-8b-1b-code] LookaheadOracle seed 3" in out
    assert "LookaheadOracle seed 4" in out


def test_simulate_unknown_controller_returns_2(capsys):
    argv = ["simulate", "--env", "servegym/ChunkedPrefill-v0", "--controller", "no-such", "--horizon", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown controller 'no-such'" in err and "sarathi-static" in err


def test_simulate_env_without_controller_returns_2(capsys):
    assert main(["simulate", "--env", "servegym/SpecDecode-v0", "--horizon", "5"]) == 2
    err = capsys.readouterr().err
    assert "--env needs --controller" in err and "smartspec" in err


def test_simulate_env_with_unknown_scenario_returns_2(capsys):
    argv = ["simulate", "--env", "servegym/SpecDecode-v0", "--controller", "smartspec", "--scenario", "nope"]
    assert main(argv) == 2
    assert "unknown SpecDecode scenario 'nope'" in capsys.readouterr().err
