// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object for tests/integration/test_traffic.py (built by the test, never shipped).
 *
 * A classifier that runs after the steering program on the same hook and counts every IP packet by
 * (skb->mark, L4 protocol, destination port) in a hash map pinned by name, so the test can see the mark
 * the steering program set. Never changes a verdict: always TC_ACT_UNSPEC.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct mark_key {
	__u32 mark;
	__u16 dport;	/* host order; 0 when the packet has no ports */
	__u8 proto;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mark_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mark_counts SEC(".maps");

SEC("tc")
int mark_counter(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct mark_key key = {};
	__u64 one = 1, *count;
	void *l4;

	if ((void *)(eth + 1) > end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return TC_ACT_UNSPEC;
		key.proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return TC_ACT_UNSPEC;
		key.proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return TC_ACT_UNSPEC;
	}
	if (key.proto == IPPROTO_TCP || key.proto == IPPROTO_UDP) {
		__be16 *ports = l4;

		if ((void *)(ports + 2) <= end)
			key.dport = bpf_ntohs(ports[1]);
	}
	key.mark = skb->mark;
	count = bpf_map_lookup_elem(&mark_counts, &key);
	if (!count) {
		/* first packet of this key; another CPU may insert it at the same time */
		if (!bpf_map_update_elem(&mark_counts, &key, &one, BPF_NOEXIST))
			return TC_ACT_UNSPEC;
		count = bpf_map_lookup_elem(&mark_counts, &key);
	}
	if (count)
		__sync_fetch_and_add(count, 1);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
