"""Host-tier interop harness: namespaces, strongSwan and piked nodes (run as root).

- :mod:`.netns`: ``Lab.create(prefix)`` -> ``add_ns``, ``link`` (veth, IPv4/IPv6),
  ``add_host_net`` (LAN behind a gateway), ``Namespace.run/popen/ping/ip``; ``close()``
  kills tracked processes by PID, then stragglers inside its namespaces, then deletes them.
- :mod:`.topology`: ``make_gateways(lab)`` -> two gateways with LAN hosts.
- :mod:`.strongswan`: ``StrongswanNode`` (charon in a private /run, swanctl over its own
  vici socket), ``Connection``/``Child``/``Secret`` -> swanctl.conf, ``list_sas()`` parsed
  from ``swanctl --list-sas --raw`` into ``IkeSaInfo``/``ChildSaInfo``.
- :mod:`.strongswan_v1`: IKEv1 peers from the same parameters: ``ikev1_connection`` (Main or
  Aggressive Mode, PSK or RSA/ECDSA certs, PFS via ``esp_proposals``, DPD, encap),
  ``ikev1_charon`` (a node with the PSK or CA/cert/key installed), ``ikev1_pair`` (two
  charons on ``make_gateways``), ``ikev1_exchanges(log)`` (the message flow charon logged).
- :mod:`.piked`: ``PikedNode`` (same Connection objects -> pike.toml; ``pikectl list-sas
  --json`` -> the same ``IkeSaInfo``).
- conftest fixtures: ``lab``, ``gateways``, ``make_charon``, ``make_piked``.

Usable from plain scripts: ``from interop.netns import Lab`` with tests/ on ``sys.path``,
as pytest imports it (see tests/wire/fixtures/capture.py).
"""
