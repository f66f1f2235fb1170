import json

import numpy as np
import pyarrow.compute as pc
import pytest

from riskshare.data import read_table, uscc
from riskshare.errors import InputError
from riskshare.scenarios.synth import SynthConfig, generate

CFG = SynthConfig(institutions=4000, labelled=1500, days=3, seed=11, sub_batch=40)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    truth = generate(out, CFG)
    return out, truth


def ids(path, column="uscc"):
    return set(read_table(path, string_columns=[column])[column].to_pylist())


def test_codes_are_valid_distinct_uscc(data):
    out, _ = data
    codes = read_table(out / "bank" / "loans.csv", string_columns=["uscc"])["uscc"].combine_chunks()
    ok, _ = uscc.validate(codes)
    assert ok.all()
    assert len(pc.unique(codes)) == len(codes)


def test_same_seed_same_data(tmp_path):
    a = generate(tmp_path / "a", CFG)
    b = generate(tmp_path / "b", CFG)
    assert a == b
    assert (tmp_path / "a" / "broker" / "train.csv").read_bytes() == (tmp_path / "b" / "broker" / "train.csv").read_bytes()


def test_truth_matches_the_files(data):
    out, truth = data
    bank = ids(out / "bank" / "loans.csv")
    broker_list = ids(out / "broker" / "risk_list.csv")
    assert sorted(bank & broker_list) == truth["1.1"]["bank_clients_on_broker_list"]
    assert sorted(ids(out / "broker" / "clients.csv") & ids(out / "bank" / "risk_list.csv")) == truth["1.1"]["broker_clients_on_bank_list"]
    for day in truth["1.3"]["days"]:
        recent = ids(out / "bank" / f"recent_borrowers_{day['day']}.csv")
        buys = read_table(out / "broker" / f"large_buys_{day['day']}.csv", string_columns=["uscc"])
        hit = np.isin(buys["uscc"].to_numpy(zero_copy_only=False), list(recent))
        assert sorted(np.array(buys["uscc"].to_pylist())[hit].tolist()) == day["flagged"]
        assert round(float(buys["amount"].to_numpy()[hit].sum()), 2) == day["flagged_amount"]
        assert (buys["amount"].to_numpy() >= CFG.large_buy_threshold).all()
    group = {r["uscc"]: r for r in read_table(out / "broker" / "group_risk_list.csv", strings=True).to_pylist()}
    for key, answer in truth["2.1"]["batch"].items():
        assert (answer is None) == (key not in group)
        if answer:
            assert answer["reason"] == group[key]["reason"]
    keys = (out / "sub" / "lookup_keys.txt").read_text().split()
    assert keys[0] == truth["2.1"]["single_key"] and set(keys) == set(truth["2.1"]["batch"])


def test_effects_are_built_in(data):
    """Bank features carry label information; recent borrowers with credit risk buy big more often."""
    out, truth = data
    t = read_table(out / "broker" / "train.csv", string_columns=["uscc"])
    f = read_table(out / "bank" / "features.csv", string_columns=["uscc"])
    label = dict(zip(t["uscc"].to_pylist(), t["high_risk"].to_pylist()))
    util = dict(zip(f["uscc"].to_pylist(), f["utilisation"].to_pylist()))
    both = [k for k in label if k in util]
    pos = np.mean([util[k] for k in both if label[k] == 1])
    neg = np.mean([util[k] for k in both if label[k] == 0])
    assert pos > neg + 0.1
    day = truth["1.3"]["days"][0]
    rate_recent = day["flagged_count"] / day["recent_borrowers"]
    rate_all = day["large_buyers"] / CFG.institutions
    assert rate_recent > 3 * rate_all


def test_scenario_selection_and_bad_arguments(tmp_path):
    truth = generate(tmp_path / "x", CFG, ("2.1",))
    assert set(truth) == {"config", "2.1"}
    assert not (tmp_path / "x" / "bank" / "loans.csv").exists()
    assert (tmp_path / "x" / "broker" / "group_risk_list.csv").exists()
    with pytest.raises(InputError, match="unknown scenario 9.9"):
        generate(tmp_path / "y", CFG, ("9.9",))
    assert json.loads((tmp_path / "x" / "truth.json").read_text())["2.1"]["group_list"] > 0
