"""Synthetic, realistic data for the four scenarios — with the effects built in, not assumed.

Every institution has two hidden risk factors: a credit-side factor (what a bank
sees: overdue loans, utilisation, guarantees) and a trading-side factor (what a
broker sees: turnover, concentration, margin use). The broker's label "high-risk
institutional client" depends on both, so the bank's features genuinely improve
the broker's model; borrowers with a high credit-side factor divert loan money
into large stock purchases more often, so post-loan monitoring finds them.

All generation is vectorised (numpy); the same seed gives the same files.
Codes are valid unified social credit codes (GB 32100-2015) whose embedded
organisation codes carry valid GB 11714 check characters.

Layout written by :func:`generate` (``DIR``)::

    bank/loans.csv                 the bank's loan book (one row per borrower)
    bank/risk_list.csv             the bank's risk-client list
    bank/features.csv              loan-risk features for federated learning (host side)
    bank/recent_borrowers_<day>.csv borrowers with a loan in the 30 days before <day>
    broker/clients.csv             the broker's institutional clients
    broker/risk_list.csv           the broker's high-risk list (scenario 1.1)
    broker/train.csv               trading features + label "high_risk" (guest side)
    broker/large_buys_<day>.csv    purchases >= the threshold on <day>
    broker/group_risk_list.csv     head office's group risk list (scenario 2.1)
    sub/clients.csv                the subsidiary's clients
    sub/lookup_keys.txt            keys the subsidiary looks up by PIR
    truth.json                     the answers each scenario must reproduce
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..data import uscc
from ..data.io import write_table
from ..errors import InputError

SCENARIOS = ("1.1", "1.2", "1.3", "2.1")

# City -> administrative division code (GB/T 2260), the part of a USCC after its first two characters.
CITIES = {
    "北京": "110105", "上海": "310115", "深圳": "440300", "杭州": "330106", "广州": "440106",
    "成都": "510107", "南京": "320105", "武汉": "420106", "苏州": "320505", "天津": "120116",
    "重庆": "500105", "西安": "610113", "厦门": "350203", "青岛": "370212", "宁波": "330212",
}
TRADE_NAMES = np.array(list(
    "华信 鼎盛 恒泰 中融 瑞丰 宏达 金源 博远 天成 汇通 永安 嘉禾 国泰 信达 长城 东方 联合 新华 盛世 弘毅 "
    "海纳 祥和 兴业 银河 泰康 明德 开元 富邦 聚力 和信 正大 中科 远洋 顺丰 安信 启明 鑫达 万通 德勤 润泽".split()
))
INDUSTRIES = np.array(
    "投资管理 资产管理 实业 科技 贸易 融资租赁 商业保理 建设工程 供应链管理 能源 物流 房地产开发 医药 新材料 文化传媒".split()
)
SUFFIXES = np.array(["有限公司", "股份有限公司", "集团有限公司", "有限责任公司"])
LOAN_CLASSES = np.array(["正常", "关注", "次级", "可疑", "损失"])  # five-category loan classification
BROKER_REASONS = np.array(["异常交易", "高比例股票质押", "频繁大额交易", "账户集中度过高", "两融违约风险"])
BANK_REASONS = np.array(["逾期90天以上", "次级类贷款", "可疑类贷款", "担保代偿", "涉诉被执行"])

_GB11714_VALUE = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_GB11714_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2])
_ORG_ALPHABET = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))  # also valid USCC characters


@dataclass(frozen=True)
class SynthConfig:
    institutions: int = 100_000
    labelled: int = 20_000
    days: int = 5
    large_buy_threshold: float = 1_000_000.0
    seed: int = 7
    start_date: dt.date = dt.date(2026, 11, 23)
    pir_lookups: int = 8
    sub_batch: int = 200

    @classmethod
    def small(cls, seed: int = 7) -> "SynthConfig":
        return cls(institutions=6_000, labelled=2_500, days=3, seed=seed, sub_batch=50)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_codes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct valid USCCs and the city of each: '91' + division + GB 11714 org code + check."""
    cities = np.array(list(CITIES))
    divisions = np.frombuffer("".join(CITIES.values()).encode(), dtype=np.uint8).reshape(-1, 6)
    org_chars = np.frombuffer("".join(_ORG_ALPHABET).encode(), dtype=np.uint8)
    gb11714_value = np.array([_GB11714_VALUE[ch] for ch in _ORG_ALPHABET])
    codes = np.zeros(0, dtype="U18")
    city_of = np.zeros(0, dtype=cities.dtype)
    while len(codes) < n:
        m = int((n - len(codes)) * 1.1) + 16
        city_idx = rng.integers(0, len(cities), m)
        body = rng.integers(0, len(org_chars), (m, 8))
        c9 = 11 - (gb11714_value[body] * _GB11714_WEIGHTS).sum(axis=1) % 11  # GB 11714 check character
        check9 = np.where(c9 == 10, ord("X"), np.where(c9 == 11, ord("0"), ord("0") + c9)).astype(np.uint8)
        mat = np.empty((m, 18), dtype=np.uint8)
        mat[:, 0], mat[:, 1] = ord("9"), ord("1")  # registered with industry and commerce; an enterprise
        mat[:, 2:8] = divisions[city_idx]
        mat[:, 8:16] = org_chars[body]
        mat[:, 16] = check9
        alphabet = np.frombuffer(uscc.ALPHABET.encode(), dtype=np.uint8)
        mat[:, 17] = alphabet[uscc.check_character(uscc._VALUE[mat[:, :17]])]
        fresh = mat.view("S18").reshape(-1).astype("U18")
        codes = np.concatenate([codes, fresh])
        city_of = np.concatenate([city_of, cities[city_idx]])
        _, first = np.unique(codes, return_index=True)
        keep = np.sort(first)
        codes, city_of = codes[keep], city_of[keep]
    return codes[:n], city_of[:n]


def make_names(rng: np.random.Generator, cities: np.ndarray) -> np.ndarray:
    n = len(cities)
    trade = np.char.add(TRADE_NAMES[rng.integers(0, len(TRADE_NAMES), n)], TRADE_NAMES[rng.integers(0, len(TRADE_NAMES), n)])
    names = np.char.add(np.char.add(np.char.add(cities, trade), INDUSTRIES[rng.integers(0, len(INDUSTRIES), n)]),
                        SUFFIXES[rng.choice(len(SUFFIXES), n, p=[0.6, 0.2, 0.1, 0.1])])
    return names


def _table(**columns: np.ndarray | str) -> pa.Table:
    """A table from numpy columns; a plain string is repeated down the column."""
    rows = next(len(v) for v in columns.values() if isinstance(v, np.ndarray))
    return pa.table({k: pa.array(np.full(rows, v) if isinstance(v, str) else v) for k, v in columns.items()})


def _day(cfg: SynthConfig, d: int) -> str:
    return (cfg.start_date + dt.timedelta(days=d)).isoformat()


def generate(out: str | Path, cfg: SynthConfig = SynthConfig(), scenarios: tuple[str, ...] = SCENARIOS) -> dict:
    """Write the data set under ``out``; return the ground truth (also written to truth.json)."""
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise InputError(f"unknown scenario {', '.join(sorted(unknown))}", hint=f"choose from {', '.join(SCENARIOS)} or all")
    if cfg.institutions < 200:
        raise InputError("--rows must be at least 200 institutions for the scenarios to have overlaps")
    rng = np.random.default_rng(cfg.seed)  # the data never depend on which scenarios are written
    out = Path(out)

    def write(scenario: str, table: pa.Table, path: Path) -> None:
        if scenario in scenarios:
            write_table(table, path)

    for part in ("bank", "broker", "sub"):
        (out / part).mkdir(parents=True, exist_ok=True)
    n = cfg.institutions
    codes, cities = make_codes(rng, n)
    names = make_names(rng, cities)

    # Hidden risk factors: credit side (bank sees it) and trading side (broker sees it), mildly correlated.
    z_credit = rng.standard_normal(n)
    z_trade = 0.2 * z_credit + np.sqrt(1 - 0.04) * rng.standard_normal(n)

    is_borrower = rng.random(n) < 0.55
    is_client = rng.random(n) < 0.45
    # The broker labels a subset of its clients; most of them also borrow from the bank.
    client_idx = np.flatnonzero(is_client)
    weights = np.where(is_borrower[client_idx], 4.0, 1.0)
    labelled_idx = np.sort(rng.choice(client_idx, size=min(cfg.labelled, len(client_idx)), replace=False,
                                      p=weights / weights.sum()))

    # ---- bank: loan book and features --------------------------------------------------------------
    b = np.flatnonzero(is_borrower)
    zc = z_credit[b]
    overdue = np.maximum(0, np.round(np.exp(2.2 + 1.3 * zc + 0.6 * rng.standard_normal(len(b))) - 12)).astype(int)
    loan_class = np.select([overdue <= 30, overdue <= 90, overdue <= 180, overdue <= 360], [0, 1, 2, 3], 4)
    loan_balance = np.round(np.exp(15 + 0.8 * rng.standard_normal(len(b)) + 0.2 * zc), -3)
    utilisation = np.round(_sigmoid(1.0 * zc + 0.5 * rng.standard_normal(len(b)) + 0.3), 4)
    credit_lines = rng.poisson(np.exp(0.7 + 0.35 * zc))
    guarantee = np.round(np.where(zc + rng.standard_normal(len(b)) > 1.0, loan_balance * rng.uniform(0.2, 1.5, len(b)), 0), -3)
    collateral = np.round(np.clip(1.3 - 0.35 * zc + 0.3 * rng.standard_normal(len(b)), 0, 3), 3)
    inquiries = rng.poisson(np.exp(0.3 + 0.5 * zc))
    # Loan dates: most older, some within the monitoring window.
    days_before = np.where(rng.random(len(b)) < 0.15, rng.integers(0, 40, len(b)), rng.integers(40, 1500, len(b)))
    b_dates = np.datetime64(cfg.start_date) - days_before.astype("timedelta64[D]")
    loan_date = b_dates.astype(str)

    write("1.1", _table(uscc=codes[b], name=names[b], city=cities[b], loan_balance=loan_balance,
                       overdue_days=overdue, loan_class=LOAN_CLASSES[loan_class], loan_date=loan_date),
                out / "bank" / "loans.csv")
    write("1.2", _table(uscc=codes[b], overdue_days=overdue, loan_class_code=loan_class, utilisation=utilisation,
                       credit_lines=credit_lines, guarantee_exposure=guarantee, collateral_ratio=collateral,
                       credit_inquiries_90d=inquiries, log_loan_balance=np.round(np.log(loan_balance), 4)),
                out / "bank" / "features.csv")
    bank_risky = b[(loan_class >= 2) | (overdue >= 90)]
    bank_risk_reason = BANK_REASONS[rng.integers(0, len(BANK_REASONS), len(bank_risky))]
    bank_pos = np.searchsorted(b, bank_risky)
    write("1.1", _table(uscc=codes[bank_risky], name=names[bank_risky],
                       risk_level=np.where(loan_class[bank_pos] >= 3, "高", "中"), reason=bank_risk_reason,
                       listed_date=_day(cfg, -int(rng.integers(1, 300)))),
                out / "bank" / "risk_list.csv")

    # ---- broker: clients, label, trading features ---------------------------------------------------
    c = client_idx
    zt, zcc = z_trade[c], z_credit[c]
    noise = rng.standard_normal((7, len(c)))
    turnover = np.round(np.exp(1.0 + 0.6 * zt + 0.5 * noise[0]), 3)
    concentration = np.round(_sigmoid(-0.5 + 0.8 * zt + 0.6 * noise[1]), 4)
    margin_use = np.round(_sigmoid(-1.0 + 0.7 * zt + 0.1 * zcc + 0.6 * noise[2]), 4)
    large_trades = rng.poisson(np.exp(0.5 + 0.5 * zt))
    pledge = np.round(_sigmoid(-1.5 + 0.6 * zt + 0.1 * zcc + 0.5 * noise[3]), 4)
    account_age = np.round(np.clip(8 - 1.5 * zt + 3 * noise[4], 0.3, 25), 1)
    net_assets = np.round(np.exp(16 + 1.0 * noise[5]), -3)
    logit = -2.4 + 1.0 * zt + 1.7 * zcc + 0.4 * noise[6]
    high_risk = (rng.random(len(c)) < _sigmoid(logit)).astype(int)

    write("1.1", _table(uscc=codes[c], name=names[c], city=cities[c], account_age_years=account_age),
                out / "broker" / "clients.csv")
    lab_pos = np.searchsorted(c, labelled_idx)
    write("1.2", _table(uscc=codes[labelled_idx], high_risk=high_risk[lab_pos], turnover_rate=turnover[lab_pos],
                       concentration=concentration[lab_pos], margin_use=margin_use[lab_pos],
                       large_trades_90d=large_trades[lab_pos], pledge_ratio=pledge[lab_pos],
                       account_age_years=account_age[lab_pos], log_net_assets=np.round(np.log(net_assets[lab_pos]), 4)),
                out / "broker" / "train.csv")
    # The broker's high-risk list: compliance flags clients with a high trading-side risk.
    flagged = _sigmoid(-2.6 + 1.5 * zt + 0.3 * noise[0]) > rng.random(len(c))
    broker_risky = c[flagged]
    reasons = BROKER_REASONS[rng.integers(0, len(BROKER_REASONS), len(broker_risky))]
    levels = np.where(zt[flagged] > 1.5, "高", "中")
    listed = (np.datetime64(cfg.start_date) - rng.integers(1, 400, len(broker_risky)).astype("timedelta64[D]")).astype(str)
    write("1.1", _table(uscc=codes[broker_risky], name=names[broker_risky], risk_level=levels, reason=reasons,
                       listed_date=listed), out / "broker" / "risk_list.csv")

    # ---- post-loan monitoring: recent borrowers and large buys per day -------------------------------
    monitoring = []
    for d in range(cfg.days):
        day = cfg.start_date + dt.timedelta(days=d)
        today = np.datetime64(day)
        window = (b_dates <= today) & (b_dates > today - np.timedelta64(30, "D"))
        recent = b[window]
        # Loan money diverted into stocks: recent borrowers with high credit risk buy big far more often.
        p = np.full(n, 0.0)
        p[c] = 0.01
        boost = np.zeros(n)
        boost[recent] = 0.25 * _sigmoid(2.0 * z_credit[recent] - 1.0)
        p = np.where(is_client, p + boost, 0.0)
        buyers = np.flatnonzero(rng.random(n) < p)
        amounts = np.round(cfg.large_buy_threshold * np.exp(np.abs(rng.standard_normal(len(buyers))) * 1.2), 2)
        write("1.3", _table(uscc=codes[recent], loan_date=loan_date[window]),
                    out / "bank" / f"recent_borrowers_{day.isoformat()}.csv")
        write("1.3", _table(uscc=codes[buyers], trade_date=day.isoformat(), amount=amounts,
                           security=rng.choice(["600519.SH", "000001.SZ", "300750.SZ", "601318.SH", "000858.SZ"], len(buyers))),
                    out / "broker" / f"large_buys_{day.isoformat()}.csv")
        hit = np.isin(buyers, recent)
        monitoring.append({
            "day": day.isoformat(),
            "recent_borrowers": int(len(recent)),
            "large_buyers": int(len(buyers)),
            "flagged": sorted(codes[buyers[hit]].tolist()),
            "flagged_count": int(hit.sum()),
            "flagged_amount": round(float(amounts[hit].sum()), 2),
        })

    # ---- group risk list at head office, the subsidiary's clients ------------------------------------
    group = np.unique(np.concatenate([broker_risky, rng.choice(n, size=max(1, n // 200), replace=False)]))
    g_reason = BROKER_REASONS[rng.integers(0, len(BROKER_REASONS), len(group))]
    g_level = np.where(z_trade[group] + z_credit[group] > 2.0, "高", "中")
    g_source = rng.choice(["总部", "子公司A", "子公司B"], len(group))
    write("2.1", _table(uscc=codes[group], name=names[group], risk_level=g_level, reason=g_reason, source=g_source,
                       listed_date=_day(cfg, -int(rng.integers(1, 200)))), out / "broker" / "group_risk_list.csv")
    sub_members = np.sort(rng.choice(n, size=max(10, n // 10), replace=False))
    write("2.1", _table(uscc=codes[sub_members], name=names[sub_members]), out / "sub" / "clients.csv")
    on_list = np.intersect1d(sub_members, group)
    off_list = np.setdiff1d(sub_members, group)
    k_on = min(len(on_list), cfg.sub_batch // 4)
    batch = np.concatenate([rng.choice(on_list, k_on, replace=False),
                            rng.choice(off_list, min(len(off_list), cfg.sub_batch - k_on), replace=False)])
    batch = rng.permutation(batch)
    if k_on:  # the single look-up of scenario 2.1 asks for a listed client
        first_on = int(np.flatnonzero(np.isin(batch, on_list))[0])
        batch[[0, first_on]] = batch[[first_on, 0]]
    if "2.1" in scenarios:
        (out / "sub" / "lookup_keys.txt").write_text("\n".join(codes[batch].tolist()) + "\n", encoding="utf-8")
    group_records = {
        codes[g]: {"name": names[g], "risk_level": lv, "reason": rs, "source": src}
        for g, lv, rs, src in zip(group.tolist(), g_level.tolist(), g_reason.tolist(), g_source.tolist())
    }

    # ---- ground truth --------------------------------------------------------------------------------
    broker_records = {codes[i]: {"name": names[i], "risk_level": lv, "reason": rs}
                      for i, lv, rs in zip(broker_risky.tolist(), levels.tolist(), reasons.tolist())}
    pir_keys = np.concatenate([rng.choice(np.intersect1d(b, broker_risky), min(cfg.pir_lookups // 2, len(np.intersect1d(b, broker_risky))), replace=False),
                               rng.choice(np.setdiff1d(b, broker_risky), cfg.pir_lookups - cfg.pir_lookups // 2, replace=False)])
    truth = {
        "config": {"institutions": n, "labelled": int(len(labelled_idx)), "days": cfg.days, "seed": cfg.seed,
                   "large_buy_threshold": cfg.large_buy_threshold},
        "1.1": {
            "bank_clients": int(len(b)),
            "broker_risk_list": int(len(broker_risky)),
            "bank_clients_on_broker_list": sorted(codes[np.intersect1d(b, broker_risky)].tolist()),
            "broker_clients": int(len(c)),
            "bank_risk_list": int(len(bank_risky)),
            "broker_clients_on_bank_list": sorted(codes[np.intersect1d(c, bank_risky)].tolist()),
            "pir_lookups": {codes[k]: broker_records.get(codes[k]) for k in pir_keys.tolist()},
        },
        "1.2": {
            "labelled": int(len(labelled_idx)),
            "labelled_with_bank_features": int(np.isin(labelled_idx, b).sum()),
            "positive_rate": round(float(high_risk[lab_pos].mean()), 4),
        },
        "1.3": {"threshold": cfg.large_buy_threshold, "days": monitoring},
        "2.1": {
            "group_list": int(len(group)),
            "single_key": codes[batch[0]],
            "single_answer": group_records.get(codes[batch[0]]),
            "batch": {codes[k]: group_records.get(codes[k]) for k in batch.tolist()},
        },
    }
    truth = {k: v for k, v in truth.items() if k == "config" or k in scenarios}
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return truth
