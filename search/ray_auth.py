"""Does the Ray cluster `search.run --address` joined ask for a token? As far as a client can tell.

Ray (2.52+) authenticates every call to its control plane (GCS, dashboard,
jobs) with one shared token when the cluster was started with
`RAY_AUTH_MODE=token`; without it anyone who reaches the head's ports runs
any code on every node (Ray's security page,
https://docs.ray.io/en/latest/ray-security/index.html). A client sees the
cluster's mode only by its own success:

- this driver joined without sending a token (its `RAY_AUTH_MODE` is not
  `token`): the cluster does not ask for one;
- this driver sent a token: a short subprocess calls the cluster's GCS
  without one (`RAY_AUTH_MODE=disabled`); a cluster that answers does not
  ask for a token either, one that refuses (`AuthenticationError`) does.

`cluster_auth_warning` returns the warning to print, or None.

A run without `--address` starts its own cluster, whose ports listen on
every interface of the machine (`*:PORT` in `ss -ltnp`, Ray 2.60):
`private_cluster_auth` turns token authentication on for it with a token of
that run only, kept in the environment Ray's processes inherit and written
nowhere (Ray would otherwise write `~/.ray/auth_token`), unless
`RAY_AUTH_MODE` is set (the tests set `disabled`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

PROBE_TIMEOUT_S = 30.0
SECURE_RECIPE = (
    "start every node with RAY_AUTH_MODE=token and the same token (README, 'On a Ray cluster'), "
    "with its ports reachable only from the cluster's private network"
)

#: the probe: exit 0 when the GCS answers a call without a token, 3 when it refuses it
_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_keys(b"", namespace=None, timeout=10)
except Exception as exc:
    sys.exit(3 if "Authentication" in type(exc).__name__ or "InvalidAuthToken" in str(exc) else 4)
"""


def private_cluster_auth() -> None:
    """Token authentication for the cluster a local run starts, with a random token of this run (module docstring)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # Ray read its settings when it was imported: read them again (as Ray's own local default does)
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # not in its stub

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def client_sends_token() -> bool:
    """Is this process in Ray's token mode (it sends the token with every call)?"""
    from ray._raylet import AuthenticationMode, get_authentication_mode  # type: ignore[attr-defined]

    return get_authentication_mode() == AuthenticationMode.TOKEN


def accepts_calls_without_token(gcs_address: str) -> bool | None:
    """Does the GCS at `gcs_address` answer a call that carries no token? None: could not tell."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["RAY_AUTH_MODE"] = "disabled"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, gcs_address], env=env, capture_output=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 3: False}.get(probe.returncode)


def cluster_auth_warning(address: str, gcs_address: str | None = None) -> str | None:
    """The warning for a joined cluster that runs without token authentication, else None (module docstring).

    `gcs_address`: the head's GCS (default: the connected driver's runtime context).
    """
    if not client_sends_token():
        return (
            f"the Ray cluster at {address} let this driver join without an authentication token: anyone "
            f"who can reach its ports can run any code on its nodes; {SECURE_RECIPE}"
        )
    if gcs_address is None:
        import ray

        gcs_address = ray.get_runtime_context().gcs_address
    if accepts_calls_without_token(gcs_address):
        return (
            f"the Ray cluster at {address} answers calls without an authentication token (this driver "
            f"sends one, the cluster does not ask for it): anyone who can reach its ports can run any code "
            f"on its nodes; {SECURE_RECIPE}"
        )
    return None
