"""classify() against the shared corpus (tests/corpus.py), which the eBPF filter also meets."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address

import pytest

from agent.core.packet import Advertisement, Rejected, RejectReason, classify
from tests.corpus import CORPUS, TRUNCATED_VECTORS, VECTORS, CorpusCase


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_corpus_case_gets_its_verdict(case: CorpusCase) -> None:
    result = classify(case.datagram, case.policy)
    if case.expected is None:
        assert isinstance(result, Advertisement), result
    else:
        assert isinstance(result, Rejected), result
        assert result.reason is case.expected


def test_corpus_names_are_unique() -> None:
    duplicates = [name for name, n in Counter(c.name for c in CORPUS).items() if n > 1]
    assert duplicates == []


def test_corpus_rejects_for_every_reason_and_accepts_some() -> None:
    seen = {case.expected for case in CORPUS}
    assert seen == {None, *RejectReason}


def test_corpus_holds_every_keepalived_capture_as_accepted() -> None:
    accepted = {case.datagram for case in CORPUS if case.expected is None}
    assert {datagram for datagram, _ in VECTORS.values()} <= accepted


def test_corpus_holds_every_truncation() -> None:
    lengths: dict[str, set[int]] = {}
    for case in CORPUS:
        for name in TRUNCATED_VECTORS:
            if case.name.startswith(f"cut_{name}_at_"):
                lengths.setdefault(name, set()).add(len(case.datagram))
    for name in TRUNCATED_VECTORS:
        assert lengths[name] == set(range(len(VECTORS[name][0])))


@pytest.mark.parametrize(
    "case",
    [c for c in CORPUS if c.expected not in (None, RejectReason.BAD_IP_HEADER)],
    ids=lambda case: case.name,
)
def test_rejection_names_the_sender_and_vrid_when_readable(case: CorpusCase) -> None:
    """The source (and, past the 8-byte header, the VRID) go into the rate-limited log."""
    result = classify(case.datagram, case.policy)
    assert isinstance(result, Rejected)
    assert result.source == IPv4Address(case.datagram[12:16])
    before_vrrp = {RejectReason.FRAGMENT, RejectReason.NOT_VRRP, RejectReason.BAD_TTL}
    if result.reason in before_vrrp | {RejectReason.SHORT_PACKET}:
        assert result.vrid is None
    else:
        header_len = (case.datagram[0] & 0x0F) * 4
        assert result.vrid == case.datagram[header_len + 1]
