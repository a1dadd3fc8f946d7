// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * ebpf.tc steering program: classifies packets on a TC (clsact) hook against an ordered rule set and
 * passes, drops, redirects (to an interface and next hop), marks or polices them, or learns the path a
 * request came in by (ingress) and sends its replies back that way (egress).
 *
 * The semantics and the map layout are described in docs/docsite/rst/dataplane.rst; the Python compiler in
 * plugins/module_utils/_classifier.py and _layout.py is the other side of that ABI. Keep the three in step.
 * The parser is in steering_parse.h, which the benchmark's floor program (benchmarks/bpf/floor.bpf.c)
 * includes too.
 *
 * Built with: clang -O2 -g -target bpf (see files/bpf/build.sh). Only UAPI headers: the program touches
 * __sk_buff and packet bytes, nothing that needs CO-RE.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "steering_parse.h"

#define MAX_RULES      4096
#define NWORDS         (MAX_RULES / 64)
#define MAX_CLASSES    8192
#define MAX_PREFIXES   8192
#define NO_PORT        65536
#define PORT_INDEXES   65537
#define COUNTER_SLOTS  (2 * MAX_RULES)
#define DEFAULT_COUNTER COUNTER_SLOTS

#define PROTO_NON_IP    256
#define PROTO_MALFORMED 257

enum action {
	ACT_PASS = 0,
	ACT_DROP = 1,
	ACT_REDIRECT = 2,
	ACT_MARK = 3,
	ACT_POLICE = 4,
	ACT_LEARN = 5,
	ACT_REPLY = 6,
};

enum police_unit {
	POLICE_PACKETS = 0,
	POLICE_BITS = 1,
};

#define NSEC_PER_SEC 1000000000ULL

#define AF_INET_  2
#define AF_INET6_ 10

/* An LPM trie key: the tag byte (slot << 1 | is_ipv6), then the address (4 or 16 bytes) */
struct lpm_key {
	__u32 prefixlen;
	__u8 data[17];
} __attribute__((packed));

struct set_header {
	__u32 slot;
	__u32 nrules;
	__u32 nwords;
	__u32 default_action;
	__u64 generation;
};

struct rule {
	__u32 action;
	__u32 counter;
	__u32 mark;
	__u32 ifindex;
	__u32 nh_family;
	__u32 police_unit;
	__u8 nh_addr[16];
	__u64 police_rate;
	__u64 police_depth;
	__u64 police_max_idle_ns;
	char name[32];
};

/*
 * A class: the rules it holds (bit r of w[r / 64]), and cand, bit i set when word i holds a rule of the
 * class designated on the field the class is of (the first field the rule specifies; see
 * docs/docsite/rst/dataplane.rst).
 */
struct class_bits {
	__u64 w[NWORDS];
	__u64 cand;
};

struct rule_stats {
	__u64 packets;
	__u64 bytes;
	__u64 drops;
};

struct proto_stats {
	__u64 packets;
	__u64 bytes;
};

struct police_state {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;
	__u64 last_ns;
};

struct settings {
	__u64 clock_override_ns;
};

/*
 * Learned return paths, shared by every hook of a network namespace (the installer pins the map in one
 * place for all of them): per flow, seen from its client, the interface its requests come in by and the
 * two MAC addresses of that hop. An LRU map: when it is full the least recently used flow makes room,
 * and every request packet refreshes its flow (a lookup marks the entry used).
 */
#define LEARNED_PATHS 65536

struct path_key {
	__u8 ipv6;
	__u8 proto;
	__u16 client_port; /* host order; 0 for a protocol without ports */
	__u16 service_port;
	__u16 pad;
	__u64 client[2];
	__u64 service[2];
};

struct path {
	__u32 ifindex;     /* the interface the requests come in by */
	__u8 peer_mac[6];  /* their L2 source: the router the replies go back to */
	__u8 own_mac[6];   /* their L2 destination: this node's address on that link */
};

/*
 * The flow cache: per CPU, direct-mapped (a flow has one place, chosen by a hash of the flow and the
 * generation), holding the classifier's answer for the last flow that hashed there. An entry is good only
 * for the rule set of its generation, which changes with every switch, so a switch needs no flush (and
 * generations start at 1, so an empty entry never answers). Not declared pinned: the rule compiler never
 * reads it (the loader pins it with the rest all the same). docs/docsite/rst/dataplane.rst, "The flow
 * cache", says why a direct-mapped cache rather than an LRU one.
 */
#define FLOW_CACHE_BITS 10
#define FLOW_CACHE_ENTRIES (1 << FLOW_CACHE_BITS)

struct flow_cache_entry {
	__u64 generation;
	struct flow flow;
	__s32 match; /* the classifier's answer: a rule index, or -1 */
	__u32 pad;
};

/*
 * The set header lives in a one-entry inner map; replacing the inner map is the atomic switch.
 * value_size rather than __type: clang emits only a forward declaration of a struct that the program
 * reaches through an inner map, and libbpf cannot size that.
 */
struct header_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct set_header));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct header_map); /* must stay the last member */
} active_set SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * MAX_PREFIXES);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} src_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * MAX_PREFIXES);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dst_prefixes SEC(".maps");

/*
 * The slotted arrays are mmapable: user space reads and writes whole tables (two 65,537-entry port arrays)
 * as memory instead of one syscall per entry. Only the unused slot is ever written.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 256);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} proto_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * PORT_INDEXES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sport_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * PORT_INDEXES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dport_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct class_bits);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} class_bits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_SLOTS + 1);
	__type(key, __u32);
	__type(value, struct rule_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct police_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} police_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 258);
	__type(key, __u32);
	__type(value, struct proto_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LEARNED_PATHS);
	__type(key, struct path_key);
	__type(value, struct path);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} learned_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOW_CACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct flow_cache_entry);
} flow_cache SEC(".maps");

static __always_inline void count_proto(struct __sk_buff *skb, __u32 bucket)
{
	struct proto_stats *ps = bpf_map_lookup_elem(&proto_stats, &bucket);

	if (ps) {
		ps->packets++;
		ps->bytes += skb->len;
	}
}

/* Index of the lowest set bit of a non-zero word. */
static __always_inline __u32 lowest_bit(__u64 w)
{
	__u32 n = 0;

	if (!(w & 0xffffffffULL)) { n += 32; w >>= 32; }
	if (!(w & 0xffffULL)) { n += 16; w >>= 16; }
	if (!(w & 0xffULL)) { n += 8; w >>= 8; }
	if (!(w & 0xfULL)) { n += 4; w >>= 4; }
	if (!(w & 0x3ULL)) { n += 2; w >>= 2; }
	if (!(w & 0x1ULL)) { n += 1; }
	return n;
}

/*
 * Index of the lowest set bit of a non-zero word, without branches: inside the candidate loop the six
 * branches of lowest_bit would multiply the paths the verifier walks past its limit.
 */
static __always_inline __u32 ctz64(__u64 w)
{
	__u64 x = (w & -w) - 1;

	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

static __always_inline struct class_bits *class_of(__u32 slot, __u32 *cls)
{
	__u32 key;

	if (!cls || *cls >= MAX_CLASSES)
		return 0;
	key = slot * MAX_CLASSES + *cls;
	return bpf_map_lookup_elem(&class_bits, &key);
}

/* The address's LPM key in `slot`. The 16 bytes are copied for either family (an IPv4 flow's last 12 are
 * zero, past the prefix length): no branch for clang to duplicate the classifier over. */
static __always_inline void lpm_key_of(struct lpm_key *key, const __u64 *addr, __u32 ipv6, __u32 slot)
{
	key->prefixlen = 8 + 32 + 96 * ipv6;
	key->data[0] = slot << 1 | ipv6;
	__builtin_memcpy(&key->data[1], addr, 16);
}

/* First rule matching the flow, or -1. */
static __always_inline int classify(const struct flow *f, const struct set_header *hdr, __u32 slot)
{
	struct class_bits *src, *dst, *proto, *sport, *dport;
	struct lpm_key addr = {};
	__u32 key, nwords = hdr->nwords;
	__u64 cand;
	int i;

	lpm_key_of(&addr, f->saddr, f->ipv6, slot);
	src = class_of(slot, bpf_map_lookup_elem(&src_prefixes, &addr));
	lpm_key_of(&addr, f->daddr, f->ipv6, slot);
	dst = class_of(slot, bpf_map_lookup_elem(&dst_prefixes, &addr));
	key = slot * 256 + f->proto;
	proto = class_of(slot, bpf_map_lookup_elem(&proto_class, &key));
	key = slot * PORT_INDEXES + (f->has_ports ? f->sport : NO_PORT);
	sport = class_of(slot, bpf_map_lookup_elem(&sport_class, &key));
	key = slot * PORT_INDEXES + (f->has_ports ? f->dport : NO_PORT);
	dport = class_of(slot, bpf_map_lookup_elem(&dport_class, &key));
	if (!src || !dst || !proto || !sport || !dport)
		return -1;

	/*
	 * A rule that matches the packet matches it on its designated field, so its word is in that field's
	 * cand: only the words of the OR of the five are scanned, lowest first, and the first match is still
	 * the first. The cost follows the rules that could match, not the size of the set.
	 */
	cand = src->cand | dst->cand | proto->cand | sport->cand | dport->cand;
	for (i = 0; i < NWORDS; i++) {
		__u64 w;
		__u32 k;

		if (!cand)
			break;
		k = ctz64(cand) & (NWORDS - 1);
		cand &= cand - 1;
		if (k >= nwords)
			break;
		w = src->w[k] & dst->w[k] & proto->w[k] & sport->w[k] & dport->w[k];
		if (w)
			return k * 64 + lowest_bit(w);
	}
	return -1;
}

/*
 * The flow's place in the cache. Only the spread matters (an entry is compared in full before it answers),
 * so one multiply: the words folded with XOR, the source address turned half a word first so that an IPv4
 * flow and its reverse do not fold alike, then Fibonacci hashing.
 */
static __always_inline __u32 flow_hash(const struct flow *f, __u64 generation)
{
	__u64 x = f->words[0] ^ (f->saddr[0] << 32 | f->saddr[0] >> 32) ^ f->saddr[1] ^ f->daddr[0] ^ f->daddr[1] ^
		  generation;

	return (x * 0x9e3779b97f4a7c15ULL) >> (64 - FLOW_CACHE_BITS);
}

/*
 * First rule matching the flow, or -1: the flow cache's answer when it has the flow for this generation,
 * else the classifier's, which then replaces the entry. The benchmark builds this file a second time with
 * -DBENCH_FLOW_CACHE_MISS=1 so that every lookup misses after doing all its work: the first packet of a flow.
 */
#ifndef BENCH_FLOW_CACHE_MISS
#define BENCH_FLOW_CACHE_MISS 0
#endif
static __always_inline int match_flow(const struct flow *f, const struct set_header *hdr)
{
	__u64 generation = hdr->generation;
	__u32 index = flow_hash(f, generation);
	struct flow_cache_entry *e = bpf_map_lookup_elem(&flow_cache, &index);
	int match, i, same = 1;

	if (e) {
#pragma clang loop unroll(full)
		for (i = 0; i < 5; i++)
			same &= e->flow.words[i] == f->words[i];
		if (same && e->generation + BENCH_FLOW_CACHE_MISS == generation)
			return e->match;
	}
	match = classify(f, hdr, hdr->slot & 1);
	if (e) {
		e->generation = generation;
		e->flow = *f;
		e->match = match;
	}
	return match;
}

/* The redirect of a rule: out of its interface, to its next hop or to the packet's destination. */
static __always_inline int redirect_neigh(const struct rule *r)
{
	if (r->nh_family == AF_INET_ || r->nh_family == AF_INET6_) {
		struct bpf_redir_neigh nh = { .nh_family = r->nh_family };

		__builtin_memcpy(nh.ipv6_nh, r->nh_addr, 16);
		return bpf_redirect_neigh(r->ifindex, &nh, sizeof(nh), 0);
	}
	return bpf_redirect_neigh(r->ifindex, 0, 0, 0);
}

/* Token bucket shared by all CPUs; returns 1 when the packet is within rate. */
static __always_inline int police(struct __sk_buff *skb, const struct rule *r)
{
	__u32 zero = 0, idx = r->counter;
	struct settings *s = bpf_map_lookup_elem(&settings, &zero);
	struct police_state *st = bpf_map_lookup_elem(&police_state, &idx);
	__u64 now, elapsed, tokens, cost;
	int ok;

	if (!st)
		return 1;
	now = (s && s->clock_override_ns) ? s->clock_override_ns : bpf_ktime_get_ns();
	cost = r->police_unit == POLICE_BITS ? (__u64)skb->len * 8 * NSEC_PER_SEC : NSEC_PER_SEC;

	bpf_spin_lock(&st->lock);
	elapsed = now > st->last_ns ? now - st->last_ns : 0;
	if (elapsed > r->police_max_idle_ns)
		elapsed = r->police_max_idle_ns;
	tokens = st->tokens + elapsed * r->police_rate;
	if (tokens > r->police_depth)
		tokens = r->police_depth;
	if (now > st->last_ns)
		st->last_ns = now;
	ok = tokens >= cost;
	if (ok)
		tokens -= cost;
	st->tokens = tokens;
	bpf_spin_unlock(&st->lock);
	return ok;
}

/* The key of a flow as its client sent it: the reply's addresses and ports swapped back. */
static __always_inline void path_key_of(struct path_key *key, const struct flow *f, int reply)
{
	int ports = f->has_ports && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP);

	key->ipv6 = f->ipv6;
	key->proto = f->proto;
	if (reply) {
		__builtin_memcpy(key->client, f->daddr, 16);
		__builtin_memcpy(key->service, f->saddr, 16);
		key->client_port = ports ? f->dport : 0;
		key->service_port = ports ? f->sport : 0;
	} else {
		__builtin_memcpy(key->client, f->saddr, 16);
		__builtin_memcpy(key->service, f->daddr, 16);
		key->client_port = ports ? f->sport : 0;
		key->service_port = ports ? f->dport : 0;
	}
}

static __always_inline int same_path(const struct path *a, const struct path *b)
{
	int same = a->ifindex == b->ifindex, i;

#pragma clang loop unroll(full)
	for (i = 0; i < ETH_ALEN; i++)
		same &= a->peer_mac[i] == b->peer_mac[i] && a->own_mac[i] == b->own_mac[i];
	return same;
}

/* Records where a request came from; a frame sent to a group address (multicast, broadcast) teaches nothing. */
static __always_inline void learn(struct __sk_buff *skb, const struct flow *f)
{
	struct path_key key = {};
	struct path path = { .ifindex = skb->ifindex };
	struct path *known;
	struct ethhdr *eth = packet_bytes(skb, 0, sizeof(*eth));

	if (!eth || eth->h_dest[0] & 1)
		return;
	__builtin_memcpy(path.peer_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(path.own_mac, eth->h_dest, ETH_ALEN);
	path_key_of(&key, f, 0);
	known = bpf_map_lookup_elem(&learned_paths, &key);
	if (known && same_path(known, &path))
		return; /* the common case: no write */
	bpf_map_update_elem(&learned_paths, &key, &path, BPF_ANY);
}

/*
 * Sends a reply back the way its request came: to the learned router, out of the learned interface (on
 * the interface it is already leaving by, only the MACs change). Without a learned path: the rule's
 * redirect when it has one and it leads elsewhere (a redirect to the egress hook's own interface would
 * come back here), else the normal route.
 */
static __always_inline int reply(struct __sk_buff *skb, const struct flow *f, const struct rule *r)
{
	struct path_key key = {};
	struct path *path;

	path_key_of(&key, f, 1);
	path = bpf_map_lookup_elem(&learned_paths, &key);
	if (path) {
		__u8 macs[2 * ETH_ALEN];
		__u32 ifindex = path->ifindex;

		__builtin_memcpy(macs, path->peer_mac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, path->own_mac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return TC_ACT_SHOT;
		if (ifindex == skb->ifindex)
			return TC_ACT_UNSPEC;
		return bpf_redirect(ifindex, 0);
	}
	if (r->ifindex && r->ifindex != skb->ifindex)
		return redirect_neigh(r);
	return TC_ACT_UNSPEC;
}

static __always_inline int verdict_default(struct __sk_buff *skb, const struct set_header *hdr)
{
	__u32 idx = DEFAULT_COUNTER;
	struct rule_stats *rs = bpf_map_lookup_elem(&rule_stats, &idx);
	int drop = hdr->default_action == ACT_DROP;

	if (rs) {
		rs->packets++;
		rs->bytes += skb->len;
		if (drop)
			rs->drops++;
	}
	return drop ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

#ifdef STEERING_EXPLAIN
/*
 * The explain build (files/bpf/steering_explain.bpf.o, built with -DSTEERING_EXPLAIN): the same parser and
 * classifier, loaded by ebpf.tc.steering_explain with a hook's pinned maps and run with BPF_PROG_TEST_RUN on
 * a described packet. It writes nothing: no counter, policer bucket, flow cache entry or learned path moves.
 * The answer is in skb->cb (plugins/module_utils/_explain.py reads it).
 */
enum explain_answer {
	EXPLAIN_NO_SET = 0,    /* no rule set applied: everything passes */
	EXPLAIN_NON_IP = 1,    /* passes, whatever the rules say */
	EXPLAIN_MALFORMED = 2, /* the default action */
	EXPLAIN_DEFAULT = 3,   /* no rule matched: the default action */
	EXPLAIN_RULE = 4,      /* rule cb[1] of the set decides */
};

SEC("tc")
int steering_explain(struct __sk_buff *skb)
{
	struct packet p = {};
	struct set_header *hdr;
	void *inner;
	__u32 zero = 0;
	int match;

	skb->cb[0] = EXPLAIN_NO_SET;
	skb->cb[1] = 0;
	parse(skb, &p);
	inner = bpf_map_lookup_elem(&active_set, &zero);
	hdr = inner ? bpf_map_lookup_elem(inner, &zero) : 0;
	if (!hdr)
		return TC_ACT_UNSPEC;
	skb->cb[2] = hdr->slot & 1;
	skb->cb[3] = (__u32)hdr->generation;
	skb->cb[4] = (__u32)(hdr->generation >> 32);
	if (p.kind != PKT_IP) {
		skb->cb[0] = p.kind == PKT_NON_IP ? EXPLAIN_NON_IP : EXPLAIN_MALFORMED;
		return TC_ACT_UNSPEC;
	}
	match = classify(&p.flow, hdr, hdr->slot & 1);
	if (match < 0 || match >= hdr->nrules || match >= MAX_RULES) {
		skb->cb[0] = EXPLAIN_DEFAULT;
		return TC_ACT_UNSPEC;
	}
	skb->cb[0] = EXPLAIN_RULE;
	skb->cb[1] = match;
	return TC_ACT_UNSPEC;
}
#else
SEC("tc")
int steering(struct __sk_buff *skb)
{
	struct packet p = {};
	struct set_header *hdr;
	struct rule_stats *rs;
	struct rule *r;
	void *inner;
	__u32 zero = 0, slot, idx;
	int match;

	parse(skb, &p);
	count_proto(skb, p.kind == PKT_IP ? p.flow.proto : p.kind == PKT_NON_IP ? PROTO_NON_IP : PROTO_MALFORMED);
	if (p.kind == PKT_NON_IP)
		return TC_ACT_UNSPEC;

	inner = bpf_map_lookup_elem(&active_set, &zero);
	if (!inner)
		return TC_ACT_UNSPEC; /* no rule set applied yet */
	hdr = bpf_map_lookup_elem(inner, &zero);
	if (!hdr)
		return TC_ACT_UNSPEC;
	if (p.kind == PKT_MALFORMED)
		return verdict_default(skb, hdr);

	slot = hdr->slot & 1;
	match = match_flow(&p.flow, hdr);
	if (match < 0 || match >= hdr->nrules || match >= MAX_RULES)
		return verdict_default(skb, hdr);

	idx = slot * MAX_RULES + match;
	r = bpf_map_lookup_elem(&rules, &idx);
	if (!r)
		return verdict_default(skb, hdr);
	idx = r->counter;
	rs = bpf_map_lookup_elem(&rule_stats, &idx);
	if (rs) {
		rs->packets++;
		rs->bytes += skb->len;
	}

	switch (r->action) {
	case ACT_DROP:
		if (rs)
			rs->drops++;
		return TC_ACT_SHOT;
	case ACT_REDIRECT:
		return redirect_neigh(r);
	case ACT_MARK:
		skb->mark = r->mark;
		return TC_ACT_UNSPEC;
	case ACT_POLICE:
		if (police(skb, r))
			return TC_ACT_UNSPEC;
		if (rs)
			rs->drops++;
		return TC_ACT_SHOT;
	case ACT_LEARN:
		learn(skb, &p.flow);
		return TC_ACT_UNSPEC;
	case ACT_REPLY:
		return reply(skb, &p.flow, r);
	default:
		return TC_ACT_UNSPEC;
	}
}

#endif /* STEERING_EXPLAIN */

char _license[] SEC("license") = "Dual BSD/GPL";
