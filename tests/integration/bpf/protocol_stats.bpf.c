// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object for tests/integration/test_module_bpf_map_info.py (built by the test, never shipped): an
 * operator's own program of the kind a tutorial has one write - per IP protocol, the packets leaving an
 * interface, in a 256-entry per-CPU array - with a struct-keyed, struct-valued hash beside it: packets and
 * bytes per (protocol, destination port). Never changes a verdict: always TC_ACT_UNSPEC.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct port_key {
	__u8 proto;
	__u8 pad;
	__u16 dport;	/* host order */
};

struct port_counters {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} protocol_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct port_key);
	__type(value, struct port_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} port_stats SEC(".maps");

SEC("tc")
int count_protocols(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct port_key key = {};
	struct port_counters fresh = {}, *counters;
	__u32 proto;
	__u64 *packets;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	proto = ip->protocol;
	packets = bpf_map_lookup_elem(&protocol_stats, &proto);
	if (packets)
		*packets += 1;	/* this CPU's own slot: no atomic needed */
	if (proto == IPPROTO_UDP || proto == IPPROTO_TCP) {
		__be16 *ports = (void *)ip + ip->ihl * 4;

		if ((void *)(ports + 2) > end)
			return TC_ACT_UNSPEC;
		key.dport = bpf_ntohs(ports[1]);
	}
	key.proto = proto;
	counters = bpf_map_lookup_elem(&port_stats, &key);
	if (!counters) {
		bpf_map_update_elem(&port_stats, &key, &fresh, BPF_NOEXIST);
		counters = bpf_map_lookup_elem(&port_stats, &key);
	}
	if (counters) {
		__sync_fetch_and_add(&counters->packets, 1);
		__sync_fetch_and_add(&counters->bytes, skb->len);
	}
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
