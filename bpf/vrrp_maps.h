/* Maps of the VRRP receive filter. Userspace writes vrid_cfg and own_addrs; the program
 * writes the rest.
 */
#ifndef VRRP_MAPS_H
#define VRRP_MAPS_H

/* vrid_cfg: (ifindex, VRID) -> what that configured virtual router accepts; written by userspace. */
BPF_HASH(vrid_cfg, struct vrid_key, struct vrid_cfg, VRRP_MAX_ROUTERS);
/* own_addrs: (ifindex, address) -> 1 for every address of this node; written by userspace. */
BPF_HASH(own_addrs, struct own_key, u8, VRRP_MAX_OWN_ADDRESSES);
/* unicast_peers: (ifindex, VRID, address) -> 1 for each peer of a VRID in unicast mode
 * (F_UNICAST); written by userspace. */
BPF_HASH(unicast_peers, struct unicast_peer_key, u8, VRRP_MAX_UNICAST_PEERS);
/* stats: per-CPU packet counters indexed by enum vrrp_reason (RejectReason order + accepted). */
BPF_PERCPU_ARRAY(stats, u64, R_MAX);
/* peers: (ifindex, VRID) -> last accepted advert and its timestamps; written by the program. */
BPF_HASH(peers, struct vrid_key, struct peer, VRRP_MAX_ROUTERS);
/* scratch: one per-CPU message buffer for the checksum loop; holds no state between packets. */
BPF_PERCPU_ARRAY(scratch, struct msgbuf, 1);
/* events: ring buffer of struct event, written only when the advert changes something. */
BPF_RINGBUF_OUTPUT(events, VRRP_RINGBUF_PAGES);

#endif /* VRRP_MAPS_H */
