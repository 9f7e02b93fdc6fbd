"""BPF_PROG_TEST_RUN through libbpf and ctypes (bpf.md §7).

Debian's bcc 0.26 does not wrap the test-run command, but ``libbpf.so.1`` (a dependency of
libbpfcc) does, and it works on the fd of a BCC-loaded program. The kernel wants a whole
Ethernet frame and strips the Ethernet header itself (``eth_type_trans``), so a socket
filter sees the IPv4 datagram at offset 0, exactly as on the agent's raw socket, and a
SCHED_CLS (tc) program sees the whole frame, exactly as on clsact ingress. The
packet runs with ``skb->ifindex`` 1, the loopback of the test's network namespace.

The kernel refuses (EINVAL) an ``ETH_P_IP`` frame whose payload is shorter than an IPv4
header, so such datagrams (which the IP stack would never hand to a raw socket anyway) go
in with the IEEE local experimental EtherType 0x88b5; the program never looks at it.
"""

from __future__ import annotations

import ctypes as ct
import functools
import os
import struct

#: The interface index a test run reports to the program.
TEST_RUN_IFINDEX = 1

_ETH_ADDRESSES = bytes.fromhex("01005e000012") + bytes.fromhex("020000000001")
_ETH_P_IP = 0x0800
_ETH_P_802_EX1 = 0x88B5
_IPV4_MIN_HEADER = 20


class _TestRunOpts(ct.Structure):
    """``struct bpf_test_run_opts`` of libbpf >= 1.0 (tools/lib/bpf/bpf.h)."""

    _fields_ = [
        ("sz", ct.c_size_t),
        ("data_in", ct.c_void_p),
        ("data_out", ct.c_void_p),
        ("data_size_in", ct.c_uint32),
        ("data_size_out", ct.c_uint32),
        ("ctx_in", ct.c_void_p),
        ("ctx_out", ct.c_void_p),
        ("ctx_size_in", ct.c_uint32),
        ("ctx_size_out", ct.c_uint32),
        ("retval", ct.c_uint32),
        ("repeat", ct.c_int),
        ("duration", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("cpu", ct.c_uint32),
    ]


@functools.cache
def _libbpf() -> ct.CDLL:
    """Opened on first use, so that collecting the tests works on a machine without it."""
    libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
    libbpf.bpf_prog_test_run_opts.argtypes = [ct.c_int, ct.POINTER(_TestRunOpts)]
    libbpf.bpf_prog_test_run_opts.restype = ct.c_int
    return libbpf


def run_datagram(prog_fd: int, datagram: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run the program on ``datagram`` (an IPv4 packet); returns (retval, ns per run)."""
    ethertype = _ETH_P_IP if len(datagram) >= _IPV4_MIN_HEADER else _ETH_P_802_EX1
    frame = _ETH_ADDRESSES + struct.pack("!H", ethertype) + datagram
    data_in = ct.create_string_buffer(frame, len(frame))
    data_out = ct.create_string_buffer(len(frame) + 256)
    opts = _TestRunOpts(
        sz=ct.sizeof(_TestRunOpts),
        data_in=ct.cast(data_in, ct.c_void_p),
        data_size_in=len(frame),
        data_out=ct.cast(data_out, ct.c_void_p),
        data_size_out=len(data_out),
        repeat=repeat,
    )
    if _libbpf().bpf_prog_test_run_opts(prog_fd, ct.byref(opts)) != 0:
        error = ct.get_errno()
        raise OSError(error, f"BPF_PROG_TEST_RUN: {os.strerror(error)}")
    return opts.retval, opts.duration
