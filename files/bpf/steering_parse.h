/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The steering program's packet parser, shared with the benchmark's floor program
 * (benchmarks/bpf/floor.bpf.c), so that the floor measures exactly this parser.
 *
 * Frames: Ethernet, at most one 802.1Q/802.1ad tag, IPv4 (options must be in the frame; a non-first
 * fragment has no ports), IPv6 with at most MAX_EXT_HEADERS extension headers (each wholly in the frame),
 * then the TCP/UDP/SCTP ports or the ICMP/ICMPv6 type and code. A frame cut short inside the IP header or its extension headers is
 * PKT_MALFORMED; anything that is not IP is PKT_NON_IP. docs/docsite/rst/dataplane.rst has the semantics.
 *
 * Headers are read in place (direct packet access, skb->data .. skb->data_end). When a header is past the
 * linear part of a non-linear skb but inside the packet (skb->len), bpf_skb_pull_data() makes it linear and
 * the parser goes on: what a frame holds, not how the kernel laid it out, decides the verdict.
 */
#ifndef EBPF_TC_STEERING_PARSE_H
#define EBPF_TC_STEERING_PARSE_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_EXT_HEADERS 8

/* Not in the UAPI headers: the kernel's own are in linux/if_vlan.h and net/ipv6.h */
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct ipv6_fragment_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units in the upper 13 bits, then 2 reserved bits and M */
	__be32 identification;
};

struct l4_ports {
	__be16 source;
	__be16 dest;
};

struct icmp_type_code {
	__u8 type;
	__u8 code;
};

#define IPV4_FRAG_OFFSET 0x1fff /* iphdr.frag_off: the offset bits (IP_OFFSET in the kernel) */
#define IPV6_FRAG_OFFSET 0xfff8

enum pkt_kind {
	PKT_NON_IP = 0,
	PKT_IP = 1,
	PKT_MALFORMED = 2,
};

/*
 * What classification reads of a packet, in 8-byte words so that the steering program's flow cache can
 * hash and compare it word by word. An IPv4 address is in the first 4 bytes of its words, the rest zero.
 */
struct flow {
	union {
		struct {
			__u8 ipv6;      /* 0 for IPv4, 1 for IPv6 */
			__u8 proto;
			__u8 has_ports; /* sport and dport hold ports, or an ICMP type and code */
			__u8 pad;
			__u16 sport;    /* host order; an ICMP type */
			__u16 dport;    /* host order; an ICMP code */
			__u64 saddr[2];
			__u64 daddr[2];
		};
		__u64 words[5];
	};
};

struct packet {
	__u32 kind;
	__u32 pad;
	struct flow flow;
};

/*
 * skb->data or skb->data_end, read from the context at this point: after a pull clang must not reuse an
 * earlier value, and it must not keep a pointer into the context either (the verifier refuses a load through
 * a "modified ctx ptr"), which it does for plain field reads.
 */
#define SKB_POINTER(skb, field)                                                                          \
	({                                                                                               \
		__u64 value_;                                                                            \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                                                    \
			     : "=r"(value_)                                                              \
			     : "r"(skb), "i"(offsetof(struct __sk_buff, field)));                        \
		(void *)(long)value_;                                                                    \
	})

/*
 * A pointer to the `len` bytes at `off` in the packet, or NULL when the packet is shorter. The bytes are
 * read in place when they are in the linear part; otherwise they are pulled into it first. Every packet
 * pointer taken before a call is stale after it (a pull moves the data): callers keep offsets, not pointers.
 */
static __always_inline void *packet_bytes(struct __sk_buff *skb, __u32 off, __u32 len)
{
	void *data = SKB_POINTER(skb, data);

	if (data + off + len <= SKB_POINTER(skb, data_end))
		return data + off;
	if (off + len > skb->len || bpf_skb_pull_data(skb, off + len))
		return NULL;
	data = SKB_POINTER(skb, data);
	if (data + off + len <= SKB_POINTER(skb, data_end))
		return data + off;
	return NULL;
}

/*
 * The ports of TCP, UDP and SCTP; for ICMP and ICMPv6 the message's type in sport and its code in dport
 * (as Open vSwitch does): rules tell the two apart by protocol, and one pair of tables serves both.
 */
static __always_inline void parse_l4(struct __sk_buff *skb, struct flow *f, __u32 off)
{
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP) {
		struct l4_ports *l4 = packet_bytes(skb, off, sizeof(*l4));

		if (l4) {
			f->has_ports = 1;
			f->sport = bpf_ntohs(l4->source);
			f->dport = bpf_ntohs(l4->dest);
		}
	} else if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		struct icmp_type_code *icmp = packet_bytes(skb, off, sizeof(*icmp));

		if (icmp) {
			f->has_ports = 1;
			f->sport = icmp->type;
			f->dport = icmp->code;
		}
	}
}

static __always_inline int is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH ||
	       nh == IPPROTO_FRAGMENT;
}

/*
 * Walks at most MAX_EXT_HEADERS IPv6 extension headers from offset off (nh: the first next-header
 * value). Returns -1 for a malformed packet: a header cut short by the end of the frame, or one more
 * extension header than we walk.
 *
 * Fully unrolled: no back-edge. Kernels before 6.3 (Debian 12's 6.1, Ubuntu 22.04's 5.15) refuse a loop
 * whose back-edge is a fall-through rather than a jump ("back-edge from insn N to N+1"), and whether clang
 * lays a loop out that way is not ours to choose. The kernel matrix (tests/kernels/) proves the object on
 * those kernels; it builds its guard fixture, the loop shape 6.1 refuses, by defining EXT_HEADER_LOOP as
 * _Pragma("clang loop unroll(disable)"). The shipped object never defines it.
 */
#ifndef EXT_HEADER_LOOP
#define EXT_HEADER_LOOP _Pragma("clang loop unroll(full)")
#endif
static __always_inline int parse_ipv6_ext(struct __sk_buff *skb, struct packet *p, __u32 off, __u8 nh)
{
	int i;

	EXT_HEADER_LOOP
	for (i = 0; i <= MAX_EXT_HEADERS; i++) {
		struct ipv6_opt_hdr *opt;
		__u32 len;

		if (!is_ipv6_ext(nh)) {
			p->flow.proto = nh;
			parse_l4(skb, &p->flow, off);
			return 0;
		}
		if (i == MAX_EXT_HEADERS)
			return -1;
		if (nh == IPPROTO_FRAGMENT) {
			struct ipv6_fragment_hdr *frag = packet_bytes(skb, off, sizeof(*frag));

			if (!frag)
				return -1;
			nh = frag->nexthdr;
			off += sizeof(*frag);
			if (frag->frag_off & bpf_htons(IPV6_FRAG_OFFSET)) {
				p->flow.proto = nh;
				return 0; /* non-first fragment: no ports */
			}
			continue;
		}
		opt = packet_bytes(skb, off, sizeof(*opt));
		if (!opt)
			return -1;
		/* hdrlen: 8-byte units after the first 8 bytes; AH's: 4-byte units after the first 8 */
		if (nh == IPPROTO_AH)
			len = ((__u32)opt->hdrlen + 2) * 4;
		else
			len = ((__u32)opt->hdrlen + 1) * 8;
		nh = opt->nexthdr;
		/* the whole header must be in the frame, not only its first bytes */
		if (!packet_bytes(skb, off, len))
			return -1;
		off += len;
	}
	return -1;
}

static __always_inline void parse_ipv4(struct __sk_buff *skb, struct packet *p, __u32 off)
{
	struct iphdr *ip = packet_bytes(skb, off, sizeof(*ip));
	__u32 hlen;
	int first_fragment;

	p->kind = PKT_MALFORMED;
	if (!ip || ip->version != 4 || ip->ihl < 5)
		return;
	hlen = ip->ihl * 4;
	first_fragment = !(ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)); /* a later fragment has no ports */
	p->flow.proto = ip->protocol;
	p->flow.saddr[0] = ip->saddr; /* the address bytes in memory order, zero-extended */
	p->flow.daddr[0] = ip->daddr;
	/* the options too must be in the frame (ip is stale from here: the check may pull) */
	if (hlen > sizeof(*ip) && !packet_bytes(skb, off, hlen))
		return;
	p->kind = PKT_IP;
	if (first_fragment)
		parse_l4(skb, &p->flow, off + hlen);
}

static __always_inline void parse_ipv6(struct __sk_buff *skb, struct packet *p, __u32 off)
{
	struct ipv6hdr *ip6 = packet_bytes(skb, off, sizeof(*ip6));

	p->kind = PKT_MALFORMED;
	if (!ip6 || ip6->version != 6)
		return;
	p->flow.ipv6 = 1;
	__builtin_memcpy(p->flow.saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->flow.daddr, &ip6->daddr, 16);
	if (parse_ipv6_ext(skb, p, off + sizeof(*ip6), ip6->nexthdr))
		return;
	p->kind = PKT_IP;
}

/* Fills in p (zeroed by the caller) from the frame. */
static __always_inline void parse(struct __sk_buff *skb, struct packet *p)
{
	struct ethhdr *eth = packet_bytes(skb, 0, sizeof(*eth));
	__u32 off = sizeof(*eth);
	__be16 proto;

	p->kind = PKT_NON_IP;
	if (!eth)
		return;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = packet_bytes(skb, off, sizeof(*tag));

		if (!tag)
			return;
		proto = tag->encapsulated_proto;
		off += sizeof(*tag);
	}
	if (proto == bpf_htons(ETH_P_IP))
		parse_ipv4(skb, p, off);
	else if (proto == bpf_htons(ETH_P_IPV6))
		parse_ipv6(skb, p, off);
}

#endif /* EBPF_TC_STEERING_PARSE_H */
