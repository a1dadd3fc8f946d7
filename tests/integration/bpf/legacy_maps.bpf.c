// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object with a legacy map definition: a struct bpf_map_def in SEC("maps"), the way programs were
 * written before BTF-defined maps (fedepaol's tc-return, the seed of this project, among them). libbpf 1.0
 * and later refuse to open it; bpf_filter must say why instead of "not a BPF object".
 * libbpf 1.x no longer declares struct bpf_map_def, so it is declared here as libbpf 0.x did.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct legacy_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct legacy_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

SEC("tc")
int legacy(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&counters, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
