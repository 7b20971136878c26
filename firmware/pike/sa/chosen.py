"""The transforms an IKE SA, ISAKMP SA or CHILD_SA agreed on, one of each type."""

from __future__ import annotations

from pike.crypto.ids import T_ENCR, T_ESN, T_INTEG, T_KE, T_PRF, EsnId, TransformType
from pike.frozen import frozen
from pike.wire.payloads import Transform

_ENCR, _PRF, _INTEG, _KE, _ESN = T_ENCR, T_PRF, T_INTEG, T_KE, T_ESN
_ESN_YES, _ESN_NO = int(EsnId.YES), int(EsnId.NO)

# ``Chosen.transforms`` by the algorithms agreed: every answer (IKE_SA_INIT, IKE_AUTH,
# CREATE_CHILD_SA) names them, and they are few (what our proposals allow). Bounded all
# the same; Transforms are immutable, so answers share them.
_TRANSFORMS: dict[tuple[object, ...], tuple[Transform, ...]] = {}
_TRANSFORMS_MAX = 256


@frozen
class Chosen:
    """One transform of each type, as agreed; the proposal number and SPI are the peer's."""

    number: int
    spi: bytes
    encr_id: int
    encr_key_length: int | None
    prf_id: int | None
    integ_id: int
    group: int
    esn: bool
    # The peer's proposal carried an ESN transform (every ESP proposal must, RFC 7296
    # §3.3.3): the answer then names the one chosen, or strongSwan refuses it ("no
    # acceptable EXTENDED_SEQUENCE_NUMBERS found").
    esn_transform: bool = False
    # RFC 9370: (ADDKEn transform type, method) for each additional key exchange type the
    # proposal named, in type order; method 0 (NONE) means that exchange is skipped.
    addke: tuple[tuple[int, int], ...] = ()

    @property
    def additional(self) -> tuple[int, ...]:
        """The additional key exchange methods to run, in order (NONE left out)."""
        if not self.addke:  # (asked a few times a handshake; RFC 9370 is rare)
            return ()
        return tuple(method for _, method in self.addke if method)

    def transforms(self) -> tuple[Transform, ...]:
        """The agreed transforms as the answer's proposal carries them."""
        key = (
            self.encr_id,
            self.encr_key_length,
            self.prf_id,
            self.integ_id,
            self.group,
            self.esn,
            self.esn_transform,
            self.addke,
        )
        found = _TRANSFORMS.get(key)
        if found is None:
            if len(_TRANSFORMS) >= _TRANSFORMS_MAX:
                _TRANSFORMS.clear()
            found = _TRANSFORMS[key] = self._transforms()
        return found

    def _transforms(self) -> tuple[Transform, ...]:
        out = [Transform(_ENCR, self.encr_id, self.encr_key_length)]
        if self.prf_id is not None:
            out.append(Transform(_PRF, self.prf_id))
        if self.integ_id:
            out.append(Transform(_INTEG, self.integ_id))
        if self.group:
            out.append(Transform(_KE, self.group))
        out.extend(Transform(ttype, method) for ttype, method in self.addke)
        if self.esn_transform:
            out.append(Transform(_ESN, _ESN_YES if self.esn else _ESN_NO))
        return tuple(out)

    def triples(self) -> list[tuple[int, int, int | None]]:
        """The agreed algorithms for display (ESN left out, as strongSwan prints them)."""
        return [
            (t.type, t.id, t.key_length)
            for t in self.transforms()
            if t.type != TransformType.ESN and not (t.type > TransformType.ESN and not t.id)
        ]
