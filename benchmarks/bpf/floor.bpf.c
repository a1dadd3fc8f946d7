// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Benchmark floor: parses a frame with the steering program's own parser (files/bpf/steering_parse.h:
 * Ethernet, one 802.1Q/802.1ad tag, IPv4 with options and fragments, IPv6 with at most 8 extension
 * headers, L4 ports) and returns TC_ACT_UNSPEC. No map is touched: the difference between the steering
 * program and this one is what counting and classifying cost.
 *
 * Built at bench time with files/bpf/build.sh (clang -O2 -g -target bpf), like the shipped object.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "../../files/bpf/steering_parse.h"

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
