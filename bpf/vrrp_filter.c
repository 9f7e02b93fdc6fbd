/* VRRP advert filter: one set of checks, two attach points (socket filter and tc ingress).
 *
 * Theory of operation
 * -------------------
 * vrrp_check() runs the checks of classify() in agent/core/packet.py, in the same order,
 * on an IPv4 datagram that starts at byte `off` of the skb, and counts every drop per CPU in
 * `stats` under the same reason:
 *
 *   IP header sanity -> fragment -> protocol 112 -> TTL 255 -> 8-byte VRRP header ->
 *   version 2|3 -> type 1 -> length = 8 + 4 x count (+ 8 for v2), count > 0 ->
 *   checksum (v2: message; v3: pseudo-header form or message-only form) -> interval > 0 ->
 *   VRID configured on this ifindex -> not our own source -> configured version ->
 *   v2: same interval, same auth type and password -> destination fits the mode (unicast:
 *   one of our addresses; multicast: 224.0.0.18) -> unicast: source is a configured peer.
 *
 * An accepted advert updates `peers` for (ifindex, VRID) and, only when something the state
 * machine cares about changed, writes one `event` to the ring buffer.
 *
 * Entry points
 * - vrrp_sock (SOCKET_FILTER, SO_ATTACH_BPF on the agent's AF_INET/SOCK_RAW/112 socket):
 *   offset 0 is the IPv4 header. Rejected: return 0, dropped before the copy to the socket.
 *   Accepted: return skb->len (passed up), except in kernel-only mode (F_KERNEL_ONLY) where
 *   an advert that changes nothing is kept in the kernel (return 0, counted R_ABSORBED).
 * - vrrp_tc (SCHED_CLS, clsact ingress, direct action): offset 0 is the Ethernet header.
 *   Only IPv4 protocol-112 packets are looked at (everything else is not ours to count); it
 *   records and counts exactly like vrrp_sock but always returns TC_ACT_OK: an observer
 *   that never takes a packet away from another consumer.
 *
 * Socket filters have no bpf_csum_diff, so the checksum is a bounded loop over a per-CPU
 * copy of the message (at most 259 32-bit words).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/pkt_cls.h>

#include "vrrp_consts.h"
#include "vrrp_structs.h"
#include "vrrp_maps.h"

/* The fixed 8 bytes common to VRRPv2 (RFC 3768 §5.1) and VRRPv3 (RFC 9568 §5.1). */
struct vrrp_head {
    u8 version_type; /* version << 4 | type */
    u8 vrid;
    u8 prio;
    u8 count;
    u8 b4; /* v2: Auth Type;   v3: rsvd(4) | Max Adver Int high 4 bits */
    u8 b5; /* v2: Adver Int s; v3: Max Adver Int low 8 bits (centiseconds) */
    u16 checksum;
};

/* What vrrp_check() decided. */
enum verdict {
    V_DROP = 0,   /* rejected (counted by reason) */
    V_PASS,       /* accepted: copy to the socket */
    V_ABSORB,     /* accepted, kernel-only mode, nothing changed: keep it in the kernel */
    V_FAIL_OPEN,  /* internal failure: let userspace decide (not counted) */
};

static __always_inline void count_reason(u32 reason)
{
    u64 *counter = stats.lookup(&reason);
    if (counter)
        *counter += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline enum verdict drop_reason(u32 reason)
{
    count_reason(reason);
    return V_DROP;
}

/* Fold a 64-bit sum of 32-bit words to the 16-bit ones'-complement sum (RFC 1071 §2). */
static __always_inline u32 csum_fold(u64 sum)
{
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

/* Record the advert in `peers`; write an event when it changes something that matters.
 * Returns whether it did: such an advert must reach the state machine in every mode (even
 * when the ring buffer is full and the event is lost, the advert is still passed up). */
static __always_inline bool track_peer(struct __sk_buff *skb, const struct vrid_cfg *cfg,
                                       const struct vrrp_head *vh, u32 src, u16 interval_cs)
{
    struct vrid_key key = {.ifindex = skb->ifindex, .vrid = vh->vrid};
    u64 now = bpf_ktime_get_ns();
    u8 prio = vh->prio;
    /* RFC 9568 §6.4.2 (Backup): priority 0 sets Master_Down_Timer to Skew_Time; otherwise
     * the advert resets it unless preempting and its priority is below ours. Userspace reads
     * last_reset_ns together with prio to tell the two apart. */
    bool resets = prio == 0 || !(cfg->flags & F_PREEMPT) || prio >= cfg->local_prio;
    struct event ev = {};
    struct peer *p = peers.lookup(&key);

    if (!p) {
        struct peer fresh = {
            .src = src,
            .prio = prio,
            .version = vh->version_type >> 4,
            .interval_cs = interval_cs,
            .last_seen_ns = now,
            .last_reset_ns = resets ? now : 0,
            .count = 1,
        };
        peers.update(&key, &fresh);
        ev.what = EV_NEW;
        if (prio > cfg->local_prio)
            ev.what |= EV_ABOVE_LOCAL;
    } else {
        ev.old_src = p->src;
        ev.old_prio = p->prio;
        ev.old_interval_cs = p->interval_cs;
        if (p->src != src)
            ev.what |= EV_NEW_MASTER;
        if (p->prio != prio)
            ev.what |= EV_PRIO_CHANGE;
        if (p->interval_cs != interval_cs)
            ev.what |= EV_INTERVAL;
        if (prio > cfg->local_prio && (ev.what & (EV_NEW_MASTER | EV_PRIO_CHANGE)))
            ev.what |= EV_ABOVE_LOCAL;
        /* Not atomic across CPUs; at about one advert per interval per VRID a race only
         * merges two events, and userspace re-reads the map after every event. */
        p->src = src;
        p->prio = prio;
        p->interval_cs = interval_cs;
        p->last_seen_ns = now;
        if (resets)
            p->last_reset_ns = now;
        __sync_fetch_and_add(&p->count, 1);
    }
    /* Every priority-0 advert matters: each one restarts the Skew_Time countdown. */
    if (prio == 0)
        ev.what |= EV_PRIO_ZERO;
    if (!ev.what)
        return false;
    ev.ts_ns = now;
    ev.ifindex = key.ifindex;
    ev.src = src;
    ev.interval_cs = interval_cs;
    ev.vrid = vh->vrid;
    ev.prio = prio;
    ev.version = vh->version_type >> 4;
    events.ringbuf_output(&ev, sizeof(ev), 0);
    return true;
}

/* The checks, on the IPv4 datagram at byte `off` of the skb, `len` bytes up to the skb end. */
static __always_inline enum verdict vrrp_check(struct __sk_buff *skb, u32 off, u32 len)
{
    struct iphdr ip;
    struct vrrp_head vh;

    /* IP header sanity: version 4, IHL >= 5, IHL <= total length <= datagram length. */
    if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0 || ip.version != 4)
        return drop_reason(R_BAD_IP_HEADER);
    u32 ihl = ip.ihl * 4;
    u32 tot_len = bpf_ntohs(ip.tot_len);
    if (ihl < IPV4_MIN_HEADER || tot_len < ihl || tot_len > len)
        return drop_reason(R_BAD_IP_HEADER);
    if (bpf_ntohs(ip.frag_off) & IP_FRAGMENT_BITS)
        return drop_reason(R_FRAGMENT);
    if (ip.protocol != VRRP_IPPROTO)
        return drop_reason(R_NOT_VRRP);
    if (ip.ttl != VRRP_TTL)
        return drop_reason(R_BAD_TTL);

    /* The message ends at the IP total length: trailing bytes are link-layer padding. */
    u32 msglen = tot_len - ihl;
    u32 msgoff = off + ihl;
    if (msglen < VRRP_HEADER_LEN || bpf_skb_load_bytes(skb, msgoff, &vh, sizeof(vh)) < 0)
        return drop_reason(R_SHORT_PACKET);
    u8 version = vh.version_type >> 4;
    if (version != 2 && version != 3)
        return drop_reason(R_BAD_VERSION);
    if ((vh.version_type & 0x0f) != VRRP_TYPE_ADVERT)
        return drop_reason(R_BAD_TYPE);
    u32 trailer = version == 2 ? VRRP_V2_AUTH_LEN : 0;
    /* A count of 0 is invalid (RFC 9568 erratum 8299). */
    if (vh.count == 0 || msglen != VRRP_HEADER_LEN + 4 * (u32)vh.count + trailer)
        return drop_reason(R_BAD_LENGTH);

    /* Checksum. msglen is now 12..1036 and a multiple of 4; the mask-and-add form keeps the
     * verifier's bounds at 1..VRRP_SCRATCH_LEN without changing the value. */
    u32 zero = 0;
    struct msgbuf *buf = scratch.lookup(&zero);
    if (!buf)
        return V_FAIL_OPEN; /* cannot happen (array slot 0) */
    u32 n = ((msglen - 1) & (VRRP_SCRATCH_LEN - 1)) + 1;
    if (bpf_skb_load_bytes(skb, msgoff, buf->data, n) < 0)
        return V_FAIL_OPEN;
    u64 sum = 0;
    for (u32 i = 0; i < VRRP_MAX_WORDS; i++) {
        if (i * 4 >= n)
            break;
        sum += *(u32 *)&buf->data[i * 4];
    }
    /* Summing native-order words is fine: a ones'-complement sum folds to 0xffff (valid) in
     * either byte order (RFC 1071 §2(B)); the pseudo-header words are added in the same
     * memory order. */
    bool message_ok = csum_fold(sum) == 0xffff;
    if (version == 2) {
        /* RFC 3768 §5.3.8: the VRRP message only. */
        if (!message_ok)
            return drop_reason(R_BAD_CHECKSUM);
    } else {
        /* RFC 9568 §5.2.8 says message only; keepalived and FRR add the IPv4 pseudo-header
         * (source, destination, zero, protocol, length). Either is accepted. */
        u64 pseudo = sum + ip.saddr + ip.daddr + bpf_htons(VRRP_IPPROTO) + bpf_htons(msglen);
        if (csum_fold(pseudo) != 0xffff && !message_ok)
            return drop_reason(R_BAD_CHECKSUM);
    }

    /* VRRPv2 sends whole seconds; VRRPv3 a 12-bit count of centiseconds. */
    u16 interval_cs = version == 2 ? (u16)vh.b5 * 100 : (((u16)(vh.b4 & 0x0f)) << 8) | vh.b5;
    if (interval_cs == 0)
        return drop_reason(R_BAD_INTERVAL); /* RFC 9568 erratum 8301 */

    struct vrid_key key = {.ifindex = skb->ifindex, .vrid = vh.vrid};
    struct vrid_cfg *cfg = vrid_cfg.lookup(&key);
    if (!cfg)
        return drop_reason(R_UNKNOWN_VRID);
    struct own_key own = {.ifindex = skb->ifindex, .addr = ip.saddr};
    if (own_addrs.lookup(&own))
        return drop_reason(R_OWN_ADVERT);
    if (version != cfg->version)
        return drop_reason(R_BAD_VERSION);
    if (version == 2) {
        /* RFC 3768 §7.1: drop on a different Adver Int or Auth Type. */
        if (interval_cs != cfg->interval_cs)
            return drop_reason(R_INTERVAL_MISMATCH);
        if (vh.b4 != cfg->auth_type)
            return drop_reason(R_AUTH_MISMATCH);
        if (cfg->auth_type == AUTH_SIMPLE) {
            /* RFC 2338 §7.1: the 8-byte trailer must equal our password. */
            u64 auth = 0;
            if (bpf_skb_load_bytes(skb, msgoff + msglen - VRRP_V2_AUTH_LEN, &auth, sizeof(auth)) < 0 ||
                auth != cfg->auth_data)
                return drop_reason(R_AUTH_MISMATCH);
        }
    }
    /* draft-abinabraham-vrrp-unicast: each mode ignores the other's adverts, and unicast
     * mode hears only its configured peers. */
    if (cfg->flags & F_UNICAST) {
        struct own_key dst = {.ifindex = skb->ifindex, .addr = ip.daddr};
        if (!own_addrs.lookup(&dst))
            return drop_reason(R_WRONG_DESTINATION);
        struct unicast_peer_key pk = {.ifindex = skb->ifindex, .vrid = vh.vrid, .addr = ip.saddr};
        if (!unicast_peers.lookup(&pk))
            return drop_reason(R_UNKNOWN_PEER);
    } else if (ip.daddr != bpf_htonl(VRRP_GROUP)) {
        return drop_reason(R_WRONG_DESTINATION);
    }

    bool changed = track_peer(skb, cfg, &vh, ip.saddr, interval_cs);
    count_reason(R_ACCEPTED);
    /* Kernel-only mode keeps an advert in the kernel only when the state machine would do
     * nothing with it: no event, and, as Master, not one that may preempt us (RFC 9568
     * §6.4.3: priority above ours, or equal with the tie decided by address). */
    if ((cfg->flags & F_KERNEL_ONLY) && !changed &&
        !((cfg->flags & F_MASTER) && vh.prio >= cfg->local_prio)) {
        count_reason(R_ABSORBED);
        return V_ABSORB;
    }
    return V_PASS;
}

int vrrp_sock(struct __sk_buff *skb)
{
    u32 len = skb->len;
    enum verdict verdict = vrrp_check(skb, 0, len);
    return verdict == V_PASS || verdict == V_FAIL_OPEN ? len : 0;
}

int vrrp_tc(struct __sk_buff *skb)
{
    u8 protocol;
    if (skb->protocol != bpf_htons(ETHERTYPE_IPV4) || skb->len < ETH_HEADER_LEN + IPV4_MIN_HEADER)
        return TC_ACT_OK;
    if (bpf_skb_load_bytes(skb, ETH_HEADER_LEN + IPV4_PROTOCOL_OFFSET, &protocol, 1) < 0 ||
        protocol != VRRP_IPPROTO)
        return TC_ACT_OK; /* other traffic: not ours to judge or count */
    vrrp_check(skb, ETH_HEADER_LEN, skb->len - ETH_HEADER_LEN);
    return TC_ACT_OK;
}
