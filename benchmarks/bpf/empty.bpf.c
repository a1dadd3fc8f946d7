// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Benchmark baseline: does nothing and returns TC_ACT_UNSPEC. What BPF_PROG_TEST_RUN reports for it is
 * the harness's own cost per repetition (the kernel's test-run loop), which every other program's
 * figure includes too; the dataplane part subtracts it for the "net" ratios.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int empty(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "Dual BSD/GPL";
