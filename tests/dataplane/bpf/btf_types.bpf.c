// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object for tests/dataplane/test_btf_decode.py (built by the test, never shipped).
 *
 * Maps whose keys and values use every kind of type ebpf.tc.bpf_map_info decodes from BTF: signed and
 * unsigned integers, a bool, a char array holding text, a signed enum, a union, an anonymous struct member,
 * bitfields, an array of structs, a pointer; per-CPU values; an LPM trie of IPv4 prefixes; a
 * map-in-map; global data. No float: bpftool 7.1, the oracle, cannot print one (the unit tests cover it).
 * The program only references the maps; it is loaded, never attached.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <stdbool.h>

enum color { RED = 1, GREEN = 2, BLUE = -1 };

struct small {
	__u16 a;
	__s8 b;
};

struct everything {
	__u32 lo : 3, mid : 12, hi : 17;
	__s32 neg;
	bool flag;
	char label[8];
	enum color color;
	union {
		__u32 word;
		__u8 bytes[4];
	} u;
	struct small pair[2];
	struct {
		__u8 x;
		__u8 y;
	};
	__u64 big;
	void *ptr;
	__u8 raw[3];
};

struct ipv4_lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, struct small);
	__type(value, struct everything);
} everything SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct small);
} per_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8);
	__type(key, struct ipv4_lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} prefixes SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a },
};

__u64 packets_seen = 0;
const volatile __u32 limit = 7;

SEC("tc")
int reference_maps(struct __sk_buff *skb)
{
	struct small key = {};
	struct ipv4_lpm_key prefix = { .prefixlen = 32 };
	__u32 zero = 0;
	void *found = bpf_map_lookup_elem(&everything, &key);
	void *counts = bpf_map_lookup_elem(&per_cpu, &zero);
	void *matched = bpf_map_lookup_elem(&prefixes, &prefix);
	void *inner = bpf_map_lookup_elem(&outer, &zero);

	packets_seen++;
	return (found ? 1 : 0) + (counts ? 1 : 0) + (matched ? 1 : 0) + (inner ? 1 : 0) + limit;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
