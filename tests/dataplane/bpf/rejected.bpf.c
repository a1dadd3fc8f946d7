// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Test object the kernel verifier must reject: after some busywork (so that the verifier log is longer
 * than the tail an error keeps) it reads packet data without a bounds check. Compiles cleanly; only the
 * load fails.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int unchecked_read(struct __sk_buff *skb)
{
	__u8 *data = (void *)(long)skb->data;
	__u32 acc = skb->len;

#pragma unroll
	for (int i = 0; i < 32; i++)
		acc = acc * 31 + skb->cb[i & 3];
	return data[20] == (__u8)acc ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
