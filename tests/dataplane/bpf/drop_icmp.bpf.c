// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object for tests/dataplane/test_libbpf.py (built by the test session, never shipped).
 *
 * Drops IPv4 ICMP (TC_ACT_SHOT), passes everything else (TC_ACT_UNSPEC), and marks every packet it
 * sees: with the u32 in mark_cfg's inner map when one is installed, else with default_mark. Counts its
 * verdicts per CPU in a map pinned by name and packets per IP protocol in a hash map. The LPM trie and
 * the spin-locked array are only there to be read and written from user space.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define VERDICT_PASS 0
#define VERDICT_DROP 1

struct mark_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct mark_map);
} mark_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} by_proto SEC(".maps");

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} prefixes SEC(".maps");

struct locked_value {
	struct bpf_spin_lock lock;
	__u32 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct locked_value);
} locked SEC(".maps");

const volatile __u32 default_mark = 0x42;

static __always_inline void count(void *map, __u32 key)
{
	__u64 one = 1, *value = bpf_map_lookup_elem(map, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	else
		bpf_map_update_elem(map, &key, &one, BPF_NOEXIST);
}

SEC("tc")
int drop_icmp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0, *mark = 0;
	void *inner = bpf_map_lookup_elem(&mark_cfg, &zero);

	if (inner)
		mark = bpf_map_lookup_elem(inner, &zero);
	skb->mark = mark ? *mark : default_mark;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	count(&by_proto, ip->protocol);
	if (ip->protocol == IPPROTO_ICMP) {
		count(&verdicts, VERDICT_DROP);
		return TC_ACT_SHOT;
	}
pass:
	count(&verdicts, VERDICT_PASS);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
