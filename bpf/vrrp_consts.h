/* Constants shared by the VRRP receive filter, and the -D knobs agent/host/bpf.py may set.
 *
 * The drop-reason indices below MUST follow the member order of RejectReason in
 * agent/core/packet.py (tests/bpf/test_corpus.py checks it): the kernel and the userspace
 * codec name every drop with the same index, so one metric label covers both paths.
 */
#ifndef VRRP_CONSTS_H
#define VRRP_CONSTS_H

/* Map sizes; override with -DVRRP_MAX_ROUTERS=... etc. when loading. */
#ifndef VRRP_MAX_ROUTERS
#define VRRP_MAX_ROUTERS 1024 /* (ifindex, VRID) pairs: configured routers and peers */
#endif
#ifndef VRRP_MAX_OWN_ADDRESSES
#define VRRP_MAX_OWN_ADDRESSES 1024 /* (ifindex, IPv4 address) pairs this node owns */
#endif
#ifndef VRRP_RINGBUF_PAGES
#define VRRP_RINGBUF_PAGES 8 /* ring buffer size in pages (power of two) */
#endif
#ifndef VRRP_MAX_UNICAST_PEERS
#define VRRP_MAX_UNICAST_PEERS 4096 /* (ifindex, VRID, IPv4 address) unicast peers */
#endif

#define VRRP_IPPROTO 112      /* RFC 9568 §5.1.1.4 */
#define VRRP_TTL 255          /* RFC 3768 §7.1, RFC 9568 §7.1 */
#define VRRP_GROUP 0xe0000012 /* 224.0.0.18 in host order (compare with bpf_htonl) */
#define VRRP_TYPE_ADVERT 1    /* RFC 9568 §5.2.2 */
#define VRRP_HEADER_LEN 8     /* fixed header, both versions */
#define VRRP_V2_AUTH_LEN 8    /* RFC 3768 §5.3.10: the trailer is always there */
#define VRRP_MAX_COUNT 255    /* 8-bit Count IPvX Addr */
#define VRRP_MAX_MSG_LEN (VRRP_HEADER_LEN + 4 * VRRP_MAX_COUNT + VRRP_V2_AUTH_LEN) /* 1036 */
#define VRRP_MAX_WORDS (VRRP_MAX_MSG_LEN / 4)                                   /* 259 */
#define IPV4_MIN_HEADER 20
#define IPV4_PROTOCOL_OFFSET 9 /* byte offset of the Protocol field in the IPv4 header */
#define ETH_HEADER_LEN 14      /* tc ingress sees the Ethernet header at offset 0 */
#define ETHERTYPE_IPV4 0x0800
#define IP_FRAGMENT_BITS 0x3fff /* More Fragments flag + 13-bit offset */
/* The scratch buffer is a power of two so that a masked length is provably in bounds. */
#define VRRP_SCRATCH_LEN 2048

/* Index into the `stats` per-CPU array: RejectReason order, then the accepted count. */
enum vrrp_reason {
    R_BAD_IP_HEADER = 0,
    R_FRAGMENT,
    R_NOT_VRRP,
    R_BAD_TTL,
    R_SHORT_PACKET,
    R_BAD_VERSION,
    R_BAD_TYPE,
    R_BAD_LENGTH,
    R_BAD_CHECKSUM,
    R_BAD_INTERVAL,
    R_UNKNOWN_VRID,
    R_OWN_ADVERT,
    R_INTERVAL_MISMATCH,
    R_AUTH_MISMATCH,
    R_WRONG_DESTINATION, /* multicast advert in unicast mode, or unicast in multicast mode */
    R_UNKNOWN_PEER,      /* unicast mode: the source is not a configured peer */
    R_ACCEPTED, /* not a drop: valid adverts (passed up or kept in the kernel) */
    R_ABSORBED, /* of those, kept in the kernel (kernel-only mode): not copied to the socket */
    R_MAX,
};

/* vrid_cfg.flags */
#define F_PREEMPT 1 /* RFC 9568 §6.4.2: lower-priority adverts do not reset Master_Down_Timer */
/* Kernel-only receive: a valid advert that writes no event is not copied to the socket. */
#define F_KERNEL_ONLY 2
/* We are Master of this VRID (set by userspace on every transition). A Master must see
 * every advert that can preempt it (RFC 9568 §6.4.3: priority >= ours), even unchanged ones. */
#define F_MASTER 4
/* Unicast mode (draft-abinabraham-vrrp-unicast): adverts must come from a peer listed in
 * `unicast_peers` and be sent to one of our addresses; without it, to 224.0.0.18. */
#define F_UNICAST 8

/* vrid_cfg.auth_type: the on-wire VRRPv2 Auth Type codes (RFC 2338 §5.3.6). */
#define AUTH_NONE 0
#define AUTH_SIMPLE 1

/* event.what bits: why an event was written (several may be set at once). */
#define EV_NEW 1         /* first advert seen for this (ifindex, VRID) */
#define EV_NEW_MASTER 2  /* source address differs from the previous advert's */
#define EV_PRIO_CHANGE 4 /* priority differs from the previous advert's */
#define EV_PRIO_ZERO 8   /* priority 0: the master resigns (RFC 9568 §6.4.2 Skew_Time) */
#define EV_INTERVAL 16   /* advert interval differs from the previous advert's */
#define EV_ABOVE_LOCAL 32 /* a new master or priority is above our local priority */

#endif /* VRRP_CONSTS_H */
