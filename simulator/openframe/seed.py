"""Deterministic OpenFrame seed data: 25 devices, 40 alerts, 6 security events.

The same seed gives the same ids, names, severities and statuses; timestamps count back from
`epoch`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from simulator.openframe.services import SECURITY_CATEGORIES, OpenFrameStores
from simulator.schemas import SEVERITIES
from simulator.wire import format_timestamp

DEVICE_COUNT = 25
ALERT_COUNT = 40
SECURITY_EVENT_COUNT = 6

ORGANIZATIONS = {"org_001": "acme", "org_002": "globex", "org_003": "initech", "org_004": "umbrella"}
_DEVICE_KINDS = (
    # type, hostname prefix, weight, operating systems
    ("workstation", "ws", 10, ("Windows 11 Pro", "Windows 10 Enterprise", "macOS 15.1")),
    ("server", "srv", 6, ("Ubuntu 24.04 LTS", "Windows Server 2022", "RHEL 9.4")),
    ("network", "net", 4, ("FortiOS 7.4", "Cisco IOS XE 17.12", "RouterOS 7.16")),
    ("mobile", "mob", 2, ("iOS 18.1", "Android 15")),
    ("virtual_machine", "vm", 3, ("Ubuntu 22.04 LTS", "Debian 12", "Windows Server 2019")),
)
_ALERT_TEMPLATES = (
    ("High CPU usage", "CPU above 95% for 15 minutes", "medium"),
    ("Disk space low", "System volume has less than 5% free space", "high"),
    ("Antivirus definitions out of date", "Definitions older than 7 days", "low"),
    ("Unexpected reboot", "The device restarted without a scheduled maintenance", "medium"),
    ("Repeated failed logins", "More than 20 failed logins in 5 minutes", "high"),
    ("Ransomware behaviour detected", "Mass file renames with known extensions", "critical"),
    ("Backup job failed", "Nightly backup did not complete", "high"),
    ("Agent offline", "No check-in for 30 minutes", "medium"),
    ("Certificate expires soon", "TLS certificate expires in 10 days", "low"),
    ("Firewall rule changed", "A WAN rule was changed outside change control", "critical"),
)


def seed_openframe(stores: OpenFrameStores, *, seed: int, epoch: datetime) -> None:
    """Fills empty stores with the seed data."""
    rng = random.Random(seed)
    _seed_devices(stores, rng, epoch)
    _seed_alerts(stores, rng, epoch)
    _seed_security_events(stores, rng, epoch)


def _seed_devices(stores: OpenFrameStores, rng: random.Random, epoch: datetime) -> None:
    weights = [kind[2] for kind in _DEVICE_KINDS]
    org_ids = list(ORGANIZATIONS)
    for index in range(DEVICE_COUNT):
        device_type, prefix, _, systems = rng.choices(_DEVICE_KINDS, weights=weights)[0]
        org_id = org_ids[index % len(org_ids)]
        status = rng.choices(("online", "offline", "maintenance"), weights=(7, 2, 1))[0]
        seen_ago = (
            timedelta(minutes=rng.randint(0, 4))
            if status == "online"
            else timedelta(hours=rng.randint(2, 72))
        )
        tags = sorted(rng.sample(("production", "finance", "remote", "critical", "lab"), k=2))
        device_id = stores.devices.new_id()
        stores.devices.add(
            {
                "id": device_id,
                "hostname": f"{prefix}-{ORGANIZATIONS[org_id]}-{index + 1:02d}",
                "type": device_type,
                "status": status,
                "os": rng.choice(systems),
                "ip_address": f"10.{index % 4}.{rng.randint(0, 254)}.{rng.randint(1, 254)}",
                "organization_id": org_id,
                "tags": tags,
                "last_seen": format_timestamp(epoch - seen_ago),
                "created_at": format_timestamp(epoch - timedelta(days=90 - index)),
                "metadata": {"agent_version": f"4.{rng.randint(0, 3)}.{rng.randint(0, 9)}"},
                "updated_at": format_timestamp(epoch - seen_ago),
            }
        )


def _seed_alerts(stores: OpenFrameStores, rng: random.Random, epoch: datetime) -> None:
    device_ids = [d["id"] for d in stores.devices.all()]
    for index in range(ALERT_COUNT):
        title, description, severity = _ALERT_TEMPLATES[index % len(_ALERT_TEMPLATES)]
        if rng.random() < 0.3:  # not every alert of a kind has the same urgency
            severity = rng.choice(SEVERITIES)
        status = rng.choices(("open", "acknowledged", "resolved"), weights=(5, 2, 3))[0]
        created = epoch - timedelta(hours=ALERT_COUNT - index)
        updated = created + timedelta(minutes=rng.randint(5, 50)) if status != "open" else created
        stores.alerts.add(
            {
                "id": stores.alerts.new_id(),
                "title": title,
                "severity": severity,
                "device_id": rng.choice(device_ids),
                "description": description,
                "status": status,
                "created_at": format_timestamp(created),
                "updated_at": format_timestamp(updated),
                "metadata": {"source": rng.choice(("agent", "siem", "rmm")), "rule": index + 100},
            }
        )


def _seed_security_events(stores: OpenFrameStores, rng: random.Random, epoch: datetime) -> None:
    device_ids = [d["id"] for d in stores.devices.all()]
    for index in range(SECURITY_EVENT_COUNT):
        category = SECURITY_CATEGORIES[index % len(SECURITY_CATEGORIES)]
        stores.security_events.add(
            {
                "id": stores.security_events.new_id(),
                "device_id": rng.choice(device_ids),
                "severity": rng.choice(("medium", "high", "critical")),
                "category": category,
                "description": f"Simulated {category.replace('_', ' ')} detection",
                "detected_at": format_timestamp(epoch - timedelta(hours=12 - index)),
                "details": {"engine": "sim-edr", "confidence": rng.randint(60, 99)},
            }
        )
