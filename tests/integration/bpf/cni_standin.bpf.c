// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* A stand-in for a CNI's TCX program (Cilium >= 1.16 attaches with TCX and returns TC_ACT_OK for most
 * packets): counts what it sees and ends the hook, so nothing behind it - a clsact filter - runs. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("tc")
int cni_standin(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&seen, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
