/* Keys and values of the maps. The agent does not import bcc, so agent/host/bpf.py declares
 * them once more as ctypes layouts (MAP_LAYOUTS); every load compares them field by field
 * with what BCC generated from this file and refuses to run on a mismatch. Addresses
 * are the raw network-order u32 read from the packet (224.0.0.18 reads as 0x120000e0 on
 * little-endian).
 */
#ifndef VRRP_STRUCTS_H
#define VRRP_STRUCTS_H

/* One virtual router on one interface. */
struct vrid_key {
    u32 ifindex;
    u32 vrid;
};

/* What a configured virtual router accepts (mirror of VridPolicy + local settings). */
struct vrid_cfg {
    u8 version;      /* 2 or 3 */
    u8 flags;        /* F_PREEMPT, F_KERNEL_ONLY, F_MASTER, F_UNICAST */
    u8 local_prio;   /* our priority: decides which adverts reset Master_Down_Timer */
    u8 auth_type;    /* AUTH_NONE / AUTH_SIMPLE (VRRPv2 only) */
    u16 interval_cs; /* our Advertisement_Interval; VRRPv2 requires equality */
    u16 pad;
    u64 auth_data;   /* VRRPv2 simple password, zero-padded, as the 8 raw trailer bytes */
};

/* One address this node owns on one interface: adverts from it are our own. */
struct own_key {
    u32 ifindex;
    u32 addr;
};

/* One configured unicast peer of one virtual router on one interface. */
struct unicast_peer_key {
    u32 ifindex;
    u32 vrid;
    u32 addr;
};

/* The last accepted advert of a (ifindex, VRID): normally the current master. */
struct peer {
    u32 src;           /* IP source of the last advert */
    u8 prio;
    u8 version;
    u16 interval_cs;   /* normalised: VRRPv2 seconds x 100 */
    u64 last_seen_ns;  /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last advert */
    u64 last_reset_ns; /* ... of the last advert that reset Master_Down_Timer (0 = none) */
    u64 count;         /* accepted adverts */
};

/* Ring-buffer record of a change that matters to the state machine. */
struct event {
    u64 ts_ns;
    u32 ifindex;
    u32 src;
    u32 old_src;        /* 0 for EV_NEW */
    u16 interval_cs;
    u16 old_interval_cs;
    u8 vrid;
    u8 prio;
    u8 old_prio;
    u8 what;            /* EV_* bits */
    u8 version;
    u8 pad[7];
};

/* Per-CPU copy of one VRRP message, for the checksum loop (too big for the 512-byte stack). */
struct msgbuf {
    u8 data[VRRP_SCRATCH_LEN];
};

#endif /* VRRP_STRUCTS_H */
