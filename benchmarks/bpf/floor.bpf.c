// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Benchmark floor: parses a frame exactly as files/bpf/steering.bpf.c does (Ethernet, one 802.1Q/802.1ad
 * tag, IPv4 with options and fragments, IPv6 with at most 8 extension headers, L4 ports) and returns
 * TC_ACT_UNSPEC. No map is touched: the difference between the steering program and this one is what
 * counting and classifying cost.
 *
 * The parser is a copy of the steering program's, on purpose: that source keeps its parser static (one
 * file, no header) and must not change for the benchmark. If the steering parser changes, change this
 * one the same way (benchmarks/README.md says so).
 *
 * Built at bench time with files/bpf/build.sh (clang -O2 -g -target bpf), like the shipped object.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_EXT_HEADERS 8

#define ETH_P_8021Q_  0x8100
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_IP_     0x0800
#define ETH_P_IPV6_   0x86DD

#define IPPROTO_HOPOPTS_  0
#define IPPROTO_TCP_      6
#define IPPROTO_UDP_      17
#define IPPROTO_ROUTING_  43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_       51
#define IPPROTO_DSTOPTS_  60
#define IPPROTO_SCTP_     132

struct lpm_key {
	__u32 prefixlen;
	__u8 data[17];
} __attribute__((packed));

enum pkt_kind {
	PKT_NON_IP = 0,
	PKT_IP = 1,
	PKT_MALFORMED = 2,
};

struct packet {
	__u32 kind;
	__u32 proto;
	__u32 has_ports;
	__u16 sport;
	__u16 dport;
	struct lpm_key src;
	struct lpm_key dst;
};

static __always_inline int is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_DSTOPTS_ ||
	       nh == IPPROTO_AH_ || nh == IPPROTO_FRAGMENT_;
}

static __always_inline int parse_ipv6_ext(struct __sk_buff *skb, struct packet *p, __u32 off, __u8 nh)
{
	__u8 hdr[8];
	__u32 len;
	int i;

#pragma clang loop unroll(full)
	for (i = 0; i <= MAX_EXT_HEADERS; i++) {
		if (!is_ipv6_ext(nh)) {
			p->proto = nh;
			goto l4;
		}
		if (i == MAX_EXT_HEADERS)
			return -1;
		if (nh == IPPROTO_FRAGMENT_) {
			if (bpf_skb_load_bytes(skb, off, hdr, 8))
				return -1;
			nh = hdr[0];
			off += 8;
			if ((((__u16)hdr[2] << 8) | hdr[3]) & 0xfff8) {
				p->proto = nh;
				return 0;
			}
			continue;
		}
		if (bpf_skb_load_bytes(skb, off, hdr, 2))
			return -1;
		if (nh == IPPROTO_AH_)
			len = ((__u32)hdr[1] + 2) * 4;
		else
			len = ((__u32)hdr[1] + 1) * 8;
		if (bpf_skb_load_bytes(skb, off + len - 1, &hdr[2], 1))
			return -1;
		nh = hdr[0];
		off += len;
	}
	return -1;
l4:
	if (nh == IPPROTO_TCP_ || nh == IPPROTO_UDP_ || nh == IPPROTO_SCTP_) {
		__be16 ports[2];

		if (!bpf_skb_load_bytes(skb, off, ports, 4)) {
			p->has_ports = 1;
			p->sport = bpf_ntohs(ports[0]);
			p->dport = bpf_ntohs(ports[1]);
		}
	}
	return 0;
}

static __always_inline void parse(struct __sk_buff *skb, struct packet *p)
{
	__be16 proto;
	__u32 off = ETH_HLEN;

	p->kind = PKT_NON_IP;
	if (bpf_skb_load_bytes(skb, 12, &proto, 2))
		return;
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_)) {
		if (bpf_skb_load_bytes(skb, 16, &proto, 2))
			return;
		off += 4;
	}

	if (proto == bpf_htons(ETH_P_IP_)) {
		__u8 h[20];
		__u32 ihl;

		p->kind = PKT_MALFORMED;
		if (bpf_skb_load_bytes(skb, off, h, 20))
			return;
		ihl = h[0] & 0x0f;
		if ((h[0] >> 4) != 4 || ihl < 5)
			return;
		if (ihl > 5) {
			__u8 last;

			if (bpf_skb_load_bytes(skb, off + ihl * 4 - 1, &last, 1))
				return;
		}
		p->kind = PKT_IP;
		p->proto = h[9];
		p->src.prefixlen = 8 + 32;
		p->dst.prefixlen = 8 + 32;
		__builtin_memcpy(&p->src.data[1], &h[12], 4);
		__builtin_memcpy(&p->dst.data[1], &h[16], 4);
		p->src.data[0] = 0;
		p->dst.data[0] = 0;
		if (((((__u16)h[6] << 8) | h[7]) & 0x1fff) == 0 &&
		    (p->proto == IPPROTO_TCP_ || p->proto == IPPROTO_UDP_ || p->proto == IPPROTO_SCTP_)) {
			__be16 ports[2];

			if (!bpf_skb_load_bytes(skb, off + ihl * 4, ports, 4)) {
				p->has_ports = 1;
				p->sport = bpf_ntohs(ports[0]);
				p->dport = bpf_ntohs(ports[1]);
			}
		}
		return;
	}

	if (proto == bpf_htons(ETH_P_IPV6_)) {
		__u8 h[40];

		p->kind = PKT_MALFORMED;
		if (bpf_skb_load_bytes(skb, off, h, 40))
			return;
		if ((h[0] >> 4) != 6)
			return;
		p->src.prefixlen = 8 + 128;
		p->dst.prefixlen = 8 + 128;
		__builtin_memcpy(&p->src.data[1], &h[8], 16);
		__builtin_memcpy(&p->dst.data[1], &h[24], 16);
		p->src.data[0] = 1;
		p->dst.data[0] = 1;
		if (parse_ipv6_ext(skb, p, off + 40, h[6]))
			return;
		p->kind = PKT_IP;
	}
}

SEC("tc")
int floor_parse(struct __sk_buff *skb)
{
	struct packet p = {};

	parse(skb, &p);
	/* The parsed packet escapes into an empty asm: clang must build it in full, as the steering program
	 * does for its lookups, instead of dropping the stores nobody reads. */
	asm volatile("" : : "r"(&p) : "memory");
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "Dual BSD/GPL";
