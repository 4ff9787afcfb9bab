"""The policy as data: matching, tenants, quota shares, and files that break."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.security.policy import PolicyError, load_policy, parse_policy
from adapter.security.reloading import ReloadingFile

from ..manual_clock import ManualClock

POLICY = {
    "grants": [
        {"principals": ["cn:reader", "spiffe://corp/ns/*/sa/reporting"], "permissions": ["openframe.*.read"]},
        {"principals": ["cn:writer"], "permissions": ["openframe.*.read", "openframe.alerts.write"]},
        {"principals": ["jwt:ops-*"], "permissions": ["*"]},
    ],
    "tenants": [{"principals": ["cn:team-a*"], "credentials": {"openframe": "team_a"}}],
    "quotas": [{"principals": ["jwt:batch-*"], "max_share": 0.2}],
}

DECISIONS = [
    ("cn:reader", "openframe.devices.read", True),
    ("cn:reader", "openframe.alerts.write", False),
    ("cn:writer", "openframe.alerts.write", True),
    ("cn:writer", "openframe.alerts.delete", False),
    ("spiffe://corp/ns/billing/sa/reporting", "openframe.alerts.read", True),
    ("spiffe://corp/ns/billing/sa/other", "openframe.alerts.read", False),
    ("jwt:ops-alice", "octospine.tasks.delete", True),
    ("jwt:opsalice", "octospine.tasks.delete", False),
    ("cn:readers", "openframe.devices.read", False),  # exact names are exact
    ("", "openframe.devices.read", False),
]


@pytest.mark.parametrize(("principal", "permission", "allowed"), DECISIONS)
def test_decisions(principal: str, permission: str, allowed: bool) -> None:
    policy = parse_policy(POLICY)
    assert policy.allows(principal, permission) is allowed
    assert policy.allows(principal, permission) is allowed  # cached answer is the same


def test_default_deny() -> None:
    assert not parse_policy({}).allows("cn:anyone", "openframe.devices.read")


def test_tenants_and_shares() -> None:
    policy = parse_policy(POLICY)
    assert policy.credential_set("cn:team-a-billing", "openframe") == "team_a"
    assert policy.credential_set("cn:team-a-billing", "octospine") == ""
    assert policy.credential_set("cn:reader", "openframe") == ""
    assert policy.max_share("jwt:batch-nightly") == 0.2 and policy.max_share("cn:reader") == 1.0
    assert policy.credential_sets() == {"openframe": {"team_a"}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"grant": []}, "unknown key"),
        ({"grants": [{"principals": [], "permissions": ["x"]}]}, r"grants\[0\]: 'principals'"),
        ({"grants": [{"principals": ["a"], "permissions": "x"}]}, "'permissions'"),
        ({"grants": [{"principals": ["a"], "permissions": ["x"], "extra": 1}]}, "unknown key"),
        ({"quotas": [{"principals": ["a"], "max_share": 0}]}, "max_share"),
        ({"quotas": [{"principals": ["a"], "max_share": 1.5}]}, "max_share"),
        ({"tenants": [{"principals": ["a"], "credentials": {"openframe": ""}}]}, "credentials"),
    ],
)
def test_malformed_policies_name_the_entry(document: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(document)


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "policy.toml"
    toml.write_text('[[grants]]\nprincipals = ["cn:reader"]\npermissions = ["openframe.*.read"]\n')
    yaml = tmp_path / "policy.yaml"
    yaml.write_text("grants:\n  - principals: [cn:reader]\n    permissions: [openframe.*.read]\n")
    for path in (toml, yaml):
        assert load_policy(path).allows("cn:reader", "openframe.devices.read")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[grants]\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(broken)
    with pytest.raises(PolicyError, match="No such file"):
        load_policy(tmp_path / "missing.toml")


def test_a_broken_edit_keeps_the_last_good_policy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[[grants]]\nprincipals = ["cn:reader"]\npermissions = ["a.read"]\n')
    clock = ManualClock(0.0)
    policy = ReloadingFile("policy", [path], lambda: load_policy(path), interval=1.0, clock=clock)
    assert policy.current().allows("cn:reader", "a.read")

    path.write_text("[[grants]\nbroken")
    clock.now += 2
    assert policy.current().allows("cn:reader", "a.read")  # kept, and said so once
    assert policy.failures == 1
    assert sum("keeping the last good version" in r.getMessage() for r in caplog.records) == 1
    clock.now += 2
    policy.current()
    assert policy.failures == 1  # the same bad file is not re-parsed and re-logged

    replaced = tmp_path / "policy.new"
    replaced.write_text('[[grants]]\nprincipals = ["cn:writer"]\npermissions = ["a.read"]\n')
    replaced.replace(path)  # an atomic rotation
    clock.now += 2
    current = policy.current()
    assert current.allows("cn:writer", "a.read") and not current.allows("cn:reader", "a.read")
    assert policy.reloads == 1
