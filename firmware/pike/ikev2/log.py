"""The IKEv2 engine's logger (the shared SA layer logs as pike.sa)."""

import logging

log = logging.getLogger("pike.ikev2")
