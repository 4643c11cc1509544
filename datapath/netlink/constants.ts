// rtnetlink numbers from the kernel's uapi headers (linux/rtnetlink.h,
// if_link.h, neighbour.h, if_addr.h, if_bridge.h). Named here once so the
// encoders read like the headers they follow.

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

/** Netlink message header flags. */
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  DUMP_INTR: 0x10,
  // GET modifiers
  DUMP: 0x300,
  // NEW modifiers
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
} as const;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
} as const;

/** rtnetlink multicast groups (numbers for NETLINK_ADD_MEMBERSHIP). */
export const RTNLGRP = { LINK: 1, NEIGH: 3 } as const;

/** Attribute header bits. */
export const NLA_F_NESTED = 0x8000;
export const NLA_TYPE_MASK = 0x3fff;

/** Device flags (ifi_flags). */
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  NET_NS_FD: 28,
  EXT_MASK: 29,
  LINK_NETNSID: 37,
  TARGET_NETNSID: 46,
} as const;

export const IFLA_INFO = { KIND: 1, DATA: 2, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;

export const VETH_INFO_PEER = 1;

export const IFLA_VXLAN = {
  ID: 1,
  LINK: 3,
  LOCAL: 4,
  TTL: 5,
  LEARNING: 7,
  AGEING: 8,
  PROXY: 11,
  L2MISS: 13,
  L3MISS: 14,
  PORT: 15,
  LOCAL6: 17,
  UDP_CSUM: 18,
  DF: 29,
} as const;

/** IFLA_VXLAN_DF values. */
export const VXLAN_DF = { UNSET: 0, SET: 1, INHERIT: 2 } as const;

export const IFLA_BR = { AGEING_TIME: 4, STP_STATE: 5 } as const;

export const IFLA_BRPORT = {
  STATE: 1,
  MODE: 4, // hairpin
  LEARNING: 8,
  UNICAST_FLOOD: 9,
  PROXYARP: 10,
  MCAST_FLOOD: 27,
  BCAST_FLOOD: 30,
  NEIGH_SUPPRESS: 32,
  ISOLATED: 33,
} as const;

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3 } as const;

export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;
export const RT_TABLE_MAIN = 254;
export const RTPROT = { KERNEL: 2, BOOT: 3, STATIC: 4 } as const;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254 } as const;
export const RTN = { UNICAST: 1, LOCAL: 2, BROADCAST: 3 } as const;
export const RTNH_F_ONLINK = 0x4;

export const NDA = {
  DST: 1,
  LLADDR: 2,
  VLAN: 5,
  PORT: 6,
  VNI: 7,
  IFINDEX: 8,
  MASTER: 9,
  PROTOCOL: 12,
} as const;

export const NUD = {
  INCOMPLETE: 0x01,
  REACHABLE: 0x02,
  STALE: 0x04,
  DELAY: 0x08,
  PROBE: 0x10,
  FAILED: 0x20,
  NOARP: 0x40,
  PERMANENT: 0x80,
} as const;

export const NTF = {
  USE: 0x01,
  SELF: 0x02,
  MASTER: 0x04,
  PROXY: 0x08,
  EXT_LEARNED: 0x10,
  OFFLOADED: 0x20,
  STICKY: 0x40,
  ROUTER: 0x80,
} as const;
