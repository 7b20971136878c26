"""After a crash: the kernel keeps only what this run owns.

A piked killed with tunnels up (SIGKILL, OOM, a watchdog kill) never ran
``flush_installed``: its SAs and policies stay in the kernel next to the new run's, and
its policies may steer traffic into SAs nobody rekeys. Every SA and policy piked installs
carries a reqid from its own range (``pike.policy.ipsec.REQID_BASE``), so at start the new
run removes those it did not install; the peers' SAs come back through IKE
(``start_action``, DPD, the peer's INITIAL_CONTACT).
"""

from __future__ import annotations

import logging

from pike.kernel.interface import KernelError, KernelIpsec

log = logging.getLogger("pike.daemon")


def remove_stale(kernel: KernelIpsec) -> tuple[int, int]:
    """Remove (and log) what a previous run left; never fatal."""
    try:
        sas, policies = kernel.remove_stale()
    except KernelError as exc:
        log.error("could not remove what a previous run left in the kernel: %s", exc)
        return 0, 0
    if sas or policies:
        log.warning(
            "removed %d SA(s) and %d policy(ies) a previous run of piked left in the kernel",
            sas,
            policies,
        )
    return sas, policies
