// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object whose program sits in a section libbpf does not know (like SEC("tc") before libbpf 0.6):
 * BpfObject.load() must still load it as a TC program.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("ebpf_tc_untyped")
int untyped(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
