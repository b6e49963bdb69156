"""The [federated] section in Flower's simulation runtime on a tiny classifier trained in the test.

- IID: federated accuracy within 0.10 of centralized training on the pooled data (same epochs);
- Dirichlet(0.1): the gap is measured and reported (printed with -s; bench/RESULTS.md quotes it);
- client-side DP: each client's epsilon reported, none above the target; central DP: Flower's
  server-side wrapper, its noise multiplier and accountant epsilon reported;
- through the runner: the global and centralized models are saved and re-audited.
"""
from __future__ import annotations

import json

import pytest

import synth
from raikit.audits.cli import main
from raikit.audits.models import wrap_model
from raikit.audits.sections import RunContext
from raikit.federated import FederatedOptions, run_federated

IID_MARGIN = 0.10  # stated margin: federated (IID) accuracy is at least centralized accuracy minus this


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("federated")
    tok, model = synth.make_task(root)
    return root, tok, model


def _run(task, **overrides):
    root, tok, model = task
    adapter = wrap_model(model, tok, kind="classifier", device="cpu", progress=False)
    options = dict(data=str(root / "data.csv"), group_column="group", clients=3, rounds=3, local_epochs=2,
                   batch_size=16, physical_batch_size=16, learning_rate=3e-3, max_length=16)
    options.update(overrides)
    return run_federated(adapter, FederatedOptions(**options), RunContext(seed=0, base_dir=root, progress=False))


def test_iid_is_within_margin_of_centralized_and_dirichlet_gap_is_measured(task):
    iid = _run(task)
    m = iid.metrics
    assert m["rounds"].value == 3 and m["clients_lost"].value == 0
    assert m["centralized_accuracy"].value > 0.9  # the task is learnable
    assert m["accuracy"].value >= m["centralized_accuracy"].value - IID_MARGIN, (
        m["accuracy"].value, m["centralized_accuracy"].value)
    low, high = m["accuracy"].ci95
    assert low <= m["accuracy"].value <= high and m["accuracy"].details["ci_method"] == "Wilson score"
    assert {f"per_client.{c}.accuracy" for c in "012"} <= set(m) and "by_group.a.accuracy" in m
    rounds = iid.details["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3] and all("accuracy" in r for r in rounds)
    assert set(iid.details["per_client"]) == {"0", "1", "2"} and all(len(v) == 3 for v in iid.details["per_client"].values())
    assert list(iid.tables["partition"]["client"]) == ["0", "1", "2"]
    assert set(iid.models) == {"global", "centralized"}

    skewed = _run(task, partition="dirichlet", alpha=0.1)
    table = skewed.tables["partition"]
    assert table["majority_share"].mean() > 0.75, table  # Dirichlet(0.1): mostly one label per client
    gap = skewed.metrics["accuracy_gap"]
    assert gap.ci95 is not None and gap.ci95[0] <= gap.value <= gap.ci95[1]
    print(f"\nIID: federated {m['accuracy'].value:.3f} {m['accuracy'].ci95}, centralized "
          f"{m['centralized_accuracy'].value:.3f}, gap {m['accuracy_gap'].value:+.3f} {m['accuracy_gap'].ci95}; "
          f"Dirichlet(0.1): federated {skewed.metrics['accuracy'].value:.3f}, gap {gap.value:+.3f} {gap.ci95}; "
          f"majority share {table['majority_share'].round(2).tolist()}; round time ratio "
          f"{m['round_time_ratio'].value:.2f}")


def test_client_side_dp_reports_each_clients_epsilon(task):
    result = _run(task, client_dp=True, epsilon=4.0, rounds=2, centralized=False, learning_rate=5e-3)
    m = result.metrics
    per_client = {k: v.value for k, v in m.items() if k.startswith("dp.per_client.")}
    assert set(per_client) == {f"dp.per_client.{c}.epsilon" for c in "012"}
    assert all(0 < eps <= 4.0 + 1e-6 for eps in per_client.values()), per_client
    assert m["dp.epsilon"].value == max(per_client.values())
    assert m["dp.epsilon"].details["worst_client"] in {"0", "1", "2"}
    facts = result.details["client_dp"]["per_client"]["0"]
    assert len(facts) == 2 and all(r["noise-multiplier"] > 0 for r in facts)
    # issue 21 items 1 and 5: the server sends no noise seed, and receives no unnoised loss or example count
    assert result.details["strategy"]["seed_sent_to_clients"] is False
    assert all("train_loss" not in r for r in result.details["round_log"])
    assert all(set(f) <= {"last_eval"} for f in result.details["client_facts"].values()), result.details["client_facts"]
    assert "test splits" in result.details["epsilon_covers"]["not_covered"]
    # Real composition: each client's accountant history is carried across rounds (in its Flower context), so
    # the epsilon it reports is what a fresh Opacus RDP accountant gives for all its steps at its one noise
    # multiplier, and it is below the old basic composition (the sum of each round's epsilon on its own).
    from opacus.accountants import RDPAccountant

    delta = m["dp.epsilon"].details["delta"]
    for cid, rows in result.details["client_dp"]["per_client"].items():
        rows = sorted(rows, key=lambda r: r["round"])
        assert len({r["noise-multiplier"] for r in rows}) == 1  # calibrated once, for both rounds
        assert rows[1]["steps"] == rows[0]["round-steps"] + rows[1]["round-steps"]
        assert rows[0]["epsilon"] < rows[1]["epsilon"]
        direct = RDPAccountant()
        for r in rows:
            direct.history.append((r["noise-multiplier"], r["sample-rate"], int(r["round-steps"])))
        composed = m[f"dp.per_client.{cid}.epsilon"]
        assert composed.value == pytest.approx(direct.get_epsilon(delta), rel=1e-9)
        old_sum = sum(r["round-epsilon"] for r in rows)
        assert composed.details["sum_of_round_epsilons"] == pytest.approx(old_sum)
        assert old_sum > composed.value, (old_sum, composed.value)
        assert composed.details["accountant"] == "rdp" and "history carried across rounds" in composed.details[
            "composition"]


def test_central_dp_reports_noise_and_flower_accountant_epsilon(task):
    result = _run(task, central_dp=True, noise_multiplier=0.8, clipping_norm=2.0, rounds=2, centralized=False)
    m = result.metrics
    assert m["central_dp.noise_multiplier"].value == 0.8
    cd = result.details["central_dp"]
    assert cd["releases"] == 2 and cd["clipping_norm"] == 2.0 and m["central_dp.epsilon"].value > 0
    # client-level epsilon: no per-client statistic beside it (issue 21 item 5)
    assert not any(k.startswith("per_client.") for k in m) and result.details["per_client"] == {}
    assert result.details["client_facts"] == {}


def test_audit_saves_global_and_centralized_models_and_reaudits_them(task, tmp_path, monkeypatch):
    root, _, _ = task
    home = tmp_path / "home"  # Flower's default home is $HOME/.flwr: the simulation must write nothing there
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("FLWR_HOME", raising=False)
    config = root / "audit.toml"
    config.write_text('[run]\nseed = 0\ndevice = "cpu"\n[models.clf]\nid = "clf"\n'
                      '[fairness.groups]\nmodel = "clf"\nmax_items = 30\n'
                      '[federated]\nmodel = "clf"\ndata = "data.csv"\nclients = 3\nrounds = 1\nbatch_size = 32\n'
                      'max_length = 16\nlearning_rate = 3e-3\n[report]\nformats = ["html"]\n')
    assert main(["audit", str(config), "--out", str(tmp_path), "--quiet"]) == 0
    assert not (home / ".flwr").exists(), sorted(str(p) for p in (home / ".flwr").rglob("*"))
    [run] = [p for p in tmp_path.iterdir() if p.is_dir() and p != home]
    res = json.loads((run / "results.json").read_text())
    for variant in ("global", "centralized"):
        assert (run / "models" / f"federated.{variant}" / "model.safetensors").is_file()
        assert f"federated.{variant}.fairness.groups.accuracy.overall" in res["metrics"]
    assert res["metrics"]["federated.rounds"]["value"] == 1
    assert res["sections"]["federated"]["details"]["reaudit"]
    assert "federated" in (run / "report.html").read_text().lower()
