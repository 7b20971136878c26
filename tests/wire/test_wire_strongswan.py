"""Real strongSwan 5.9.8 IKEv2 datagrams (captured by fixtures/capture.sh): PSK,
aes128gcm16-prfsha256-x25519, a CHILD_SA rekey, an IKE_SA rekey and a delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from pike.crypto.ids import TransformType
from pike.wire.codec import decode_message, encode_message
from pike.wire.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from pike.wire.header import decode_header
from pike.wire.payloads import KePayload, NoncePayload, SaPayload, SkPayload
from pike.wire.rules import check_payloads

FIXTURES = Path(__file__).parent / "fixtures"
ALL = sorted(FIXTURES.glob("strongswan-ikev2-*.bin"))
SA_INIT = [f for f in ALL if "sa-init" in f.stem.replace("_", "-")]
ENCRYPTED = [f for f in ALL if f not in SA_INIT]

pytestmark = pytest.mark.skipif(not ALL, reason="no strongSwan fixtures captured")

EXCHANGES = {
    "sa-init": ExchangeType.IKE_SA_INIT,
    "auth": ExchangeType.IKE_AUTH,
    "create-child-sa": ExchangeType.CREATE_CHILD_SA,
    "informational": ExchangeType.INFORMATIONAL,
}
# Smallest SK body: AES-GCM's 8-byte IV + 16-byte ICV (RFC 5282 §3) + the pad length byte.
# Largest empty one: AES-CBC's 16-byte IV + one block of padding + a 16-byte ICV.
MIN_SK_BODY = 8 + 16 + 1
MAX_EMPTY_SK_BODY = 16 + 16 + 16
KE_LENGTHS = {31: 32, 19: 64, 20: 96, 21: 132, 14: 256, 15: 384, 16: 512}  # RFC 7296, 5903, 8031


def _expected(path: Path) -> tuple[int, bool]:
    """Names look like ``strongswan-ikev2-[SCENARIO-NN-][ike_]EXCHANGE-req|resp[-N]``."""
    stem = path.stem.replace("_", "-")
    for name, exchange in EXCHANGES.items():
        if f"-{name}-" in stem or f"-ike-{name}-" in stem:
            return exchange, "-resp" in stem
    raise AssertionError(path.name)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_fixture_decodes_and_follows_the_rules(path: Path) -> None:
    data = path.read_bytes()
    msg = decode_message(data)
    exchange, response = _expected(path)
    assert (msg.exchange, msg.is_response) == (exchange, response)
    assert decode_header(data).flags & 0x10 == 0  # no Version flag from IKEv2 peers
    check_payloads(msg.exchange, msg.is_response, msg.payloads, inside_sk=False)


@pytest.mark.parametrize("path", SA_INIT, ids=lambda p: p.stem)
def test_sa_init(path: Path) -> None:
    data = path.read_bytes()
    msg = decode_message(data)
    response = _expected(path)[1]
    # strongSwan initiated: the I flag is on the request only (RFC 7296 §3.1).
    assert msg.is_initiator is not response
    assert msg.message_id == 0
    if msg.notify(NotifyType.INVALID_KE_PAYLOAD):
        return  # see test_invalid_ke_round
    assert (msg.spi_r == bytes(8)) is not response
    sa = msg.first(SaPayload)
    ke = msg.first(KePayload)
    nonce = msg.first(NoncePayload)
    assert sa is not None and ke is not None and nonce is not None
    assert all(p.protocol == ProtocolId.IKE and p.spi == b"" for p in sa.proposals)
    groups = {t.id for p in sa.proposals for t in p.transforms if t.type == TransformType.KE}
    assert ke.group in groups
    assert len(ke.data) == KE_LENGTHS[ke.group]
    assert len(nonce.data) >= 16
    for natd in (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP):
        n = msg.notify(natd)
        assert n is not None and len(n.data) == 20  # SHA-1 (RFC 7296 §2.23)
    assert msg.notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) is not None
    assert msg.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS) is not None
    if response:
        # The accepted proposal: one transform of each type (RFC 7296 §3.3.6).
        (chosen,) = sa.proposals
        types = [t.type for t in chosen.transforms]
        assert len(types) == len(set(types))


@pytest.mark.parametrize("path", SA_INIT, ids=lambda p: p.stem)
def test_sa_init_re_encodes_to_the_same_bytes(path: Path) -> None:
    data = path.read_bytes()
    assert encode_message(decode_message(data)) == data


@pytest.mark.parametrize("path", ENCRYPTED, ids=lambda p: p.stem)
def test_encrypted_fixtures_have_a_plausible_sk(path: Path) -> None:
    data = path.read_bytes()
    msg = decode_message(data)
    (sk,) = msg.payloads
    assert isinstance(sk, SkPayload)
    assert len(sk.body) == len(data) - 28 - 4
    assert len(sk.body) >= MIN_SK_BODY
    if sk.first_payload == 0:  # an empty INFORMATIONAL response
        assert len(sk.body) <= MAX_EMPTY_SK_BODY
    # Kept as received: re-encoding the outer message gives the same bytes.
    assert encode_message(msg) == data


INVALID_KE = FIXTURES / "strongswan-ikev2-sa-init-resp.bin"
RETRY = FIXTURES / "strongswan-ikev2-sa-init-req-2.bin"


@pytest.mark.skipif(not RETRY.exists(), reason="capture.sh fixtures absent")
def test_invalid_ke_round() -> None:
    """IKE_SA_INIT { SA, KE(x25519), Ni } --> <-- { N(INVALID_KE_PAYLOAD(MODP_2048)) }
    IKE_SA_INIT { SA, KE(modp2048), Ni } -->   (RFC 7296 §1.2)"""
    first = decode_message((FIXTURES / "strongswan-ikev2-sa-init-req.bin").read_bytes())
    answer = decode_message(INVALID_KE.read_bytes())
    retry = decode_message(RETRY.read_bytes())
    assert [p.TYPE for p in answer.payloads] == [PayloadType.NOTIFY]
    notify = answer.notify(NotifyType.INVALID_KE_PAYLOAD)
    assert notify is not None and notify.data == (14).to_bytes(2, "big")
    assert answer.spi_i == first.spi_i and answer.spi_r == bytes(8)  # RFC 7296 §2.6
    check_payloads(answer.exchange, True, answer.payloads, inside_sk=False)
    ke1, ke2 = first.first(KePayload), retry.first(KePayload)
    assert ke1 is not None and ke2 is not None
    assert (ke1.group, ke2.group) == (31, 14)
    assert retry.spi_i == first.spi_i and retry.message_id == 0
