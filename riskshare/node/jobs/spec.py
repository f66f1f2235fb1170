"""What a job is: a named peer, tables, a purpose and a list of steps (a small DAG).

A job file (``riskshare job submit job.yaml``)::

    name: post-loan-monitoring
    peer: broker                 # the pinned peer that runs the other side
    table: recent_borrowers      # this node's registered table
    peer_table: large_purchases  # the peer's registered table
    purpose: post-loan monitoring
    role: receiver               # this node's protocol role; the peer takes the other
    result_to: receiver          # receiver | both: who learns the result
    timeout: 600                 # seconds to wait for the peer within a step
    steps:                       # optional: the default for the operation is used
      - {id: read, op: read}
      - {id: psi, op: psi, needs: [read], params: {protocol: ecdh, output_mode: intersection}}
      - {id: write, op: write, needs: [psi]}
    schedule: "0 2 * * *"        # optional: run it nightly instead of once

The same steps run on both nodes; protocol steps talk to each other over the
link, local steps (read, write) do not.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...errors import InputError
from ..home import NAME_RE

STEP_ID = r"^[a-z][a-z0-9_-]{0,31}$"


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=STEP_ID)
    op: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    needs: list[str] = Field(default_factory=list, max_length=16)
    params: dict[str, Any] = Field(default_factory=dict)


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=128)
    peer: str = Field(pattern=NAME_RE.pattern)
    table: str = Field(pattern=NAME_RE.pattern)
    peer_table: str = Field(pattern=NAME_RE.pattern)
    purpose: str = Field(min_length=1, max_length=1000)
    role: Literal["receiver", "sender"] = "receiver"
    result_to: Literal["receiver", "both"] = "receiver"
    timeout: float = Field(default=600.0, gt=0, le=7 * 86400)
    steps: list[StepSpec] = Field(min_length=1, max_length=32)
    schedule: str | None = Field(default=None, max_length=64)

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a job needs a purpose")
        return value.strip()

    @model_validator(mode="after")
    def _dag(self) -> "JobSpec":
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id '{step.id}' is used twice")
            for need in step.needs:
                if need not in seen:
                    raise ValueError(f"step '{step.id}' needs '{need}', which is not an earlier step")
            seen.add(step.id)
        if not self.name:
            self.name = f"{'-'.join(s.op for s in self.steps)} with {self.peer}"
        return self

    @property
    def ops(self) -> list[str]:
        return [s.op for s in self.steps]


def default_steps(op: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """read → <op> → write, the shape of every convenience command."""
    return [
        {"id": "read", "op": "read"},
        {"id": op, "op": op, "needs": ["read"], "params": dict(params or {})},
        {"id": "write", "op": "write", "needs": ["read", op]},
    ]


def parse_spec(data: dict[str, Any] | str) -> JobSpec:
    """Validate a job from a dict or YAML text; errors name the field."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise InputError(f"the job file is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("a job file is a YAML mapping (name, peer, table, peer_table, purpose, steps)")
    data = dict(data)
    if "steps" not in data and "op" in data:  # shorthand: op + params
        data["steps"] = default_steps(data.pop("op"), data.pop("params", None))
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'job'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"the job is not valid: {problems}") from None
