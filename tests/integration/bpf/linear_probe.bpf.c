// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* A clsact filter in front of the steering program: for the frames of `watched_len` bytes it counts them and
 * keeps the longest linear part (skb->data_end - skb->data) it saw, then hands them to the next filter
 * (TC_ACT_UNSPEC). The non-linear test uses it to show that the frames it sends reach steering with their IP
 * header outside the linear part. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps"); /* [0] frames of watched_len bytes, [1] the longest linear part, [2] watched_len */

SEC("tc")
int linear_probe(struct __sk_buff *skb)
{
	__u32 count_key = 0, linear_key = 1, len_key = 2;
	__u64 *watched = bpf_map_lookup_elem(&seen, &len_key);
	__u64 *count = bpf_map_lookup_elem(&seen, &count_key);
	__u64 *linear = bpf_map_lookup_elem(&seen, &linear_key);
	__u64 len = skb->data_end - skb->data;

	if (!watched || !count || !linear || skb->len != *watched)
		return TC_ACT_UNSPEC;
	__sync_fetch_and_add(count, 1);
	if (len > *linear)
		*linear = len;
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
