/*
 * loadgen: the fanout benchmark's load generator (benchmarks/bench_fanout.py builds it).
 *
 * One thread, one epoll set, non-blocking sockets. Opens N WebSocket or SSE streams to
 * 127.0.0.1 at a bounded connect rate, subscribes each (`--topics`, or `--mix` to give
 * each client one of several weighted pattern lists), then reads and VERIFIES every
 * client's stream: every frame is decoded, and a data message counts as a delivery (and
 * its latency is recorded) only when it passes the protocol's checks:
 *
 *   - per connection and topic: a delta carries the held seq + 1 (else `seq_gaps` or
 *     `seq_repeats`; a delta of a topic never snapshotted is `seq_no_snapshot`);
 *   - a snapshot of a held topic may jump ahead only on a latest-value or book topic
 *     (`conflations`, explained: the slow-consumer catch-up); a jump on an event topic
 *     (`trade.*`) is a hole (`seq_gaps`); a snapshot below the held seq is a stale
 *     repeat the protocol says to ignore (`stale`, not a delivery);
 *   - offsets: a delta's offset exceeds every offset received before it, and a
 *     heartbeat's is at least that (else `offset_backwards`);
 *   - a close frame 4008 (WebSocket) or an `end` event (SSE) is an `eviction`
 *     (explained); any other server close, a malformed frame, a reset or a topic beyond
 *     TOPIC_SLOTS is unexplained.
 *
 * `unexplained` sums every unexplained count; a figure with unexplained > 0 is not a
 * rate. `--payload peer` reads the bench-peers servers' frames instead (bytes 0..7
 * CLOCK_MONOTONIC ns, bytes 8..15 the publisher's seq, both little-endian): one seq
 * per connection that must rise by exactly one.
 *
 * Control on stdin, one command a line; results on stdout, one JSON object a line:
 *   (after connecting)  {"event":"ready",...}
 *   start               begin a measurement window (counters and histogram reset)
 *   stop                end it: {"event":"window",...} (verification: the window's
 *                       counts as `w_*`, and the totals since the start)
 *   quit                exit (also on stdin EOF, or after --max-seconds)
 * `--replay FILE` feeds one connection's bytes after the response head (WebSocket
 * frames, or the SSE chunked body) from FILE through the same code and prints the
 * verification as one JSON line: the verifier's unit tests use it.
 *
 * WebSocket: server frames are unmasked; 7/16/64-bit lengths; a read may end inside a
 * frame (the rest is carried to the next read). A frame may hold several concatenated
 * msgpack messages. Pings get pongs. SSE: a chunked HTTP/1.1 body; `topic`, `seq`,
 * `offset` and `ts` are read from the leading keys of each event's JSON data line.
 * --port takes a comma-separated list: connection i goes to port i mod count.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define READ_BUFFER (256 * 1024)
#define MAX_FRAME (1024 * 1024)
#define MAX_HEAD 8192
#define LINE_MAX_BYTES 512
#define MAX_EVENTS 1024
#define MSGPACK_MAX_DEPTH 32
#define LINEAR_US 1000000 /* 1 us buckets up to 1 s, then one bucket per power of 2 */
#define LOG_BUCKETS 64
#define TOPIC_SLOTS 64 /* 44 topics exist (11 symbols x 4 channels) */
#define MAX_PORTS 16
#define MAX_MIX 8
#define MAX_PATTERNS 8

enum mode { MODE_WS, MODE_SSE };
enum payload { PAYLOAD_TICKER, PAYLOAD_PEER };
enum state { ST_CONNECTING, ST_HEAD, ST_OPEN, ST_CLOSED };
enum chunk_state { CH_SIZE, CH_DATA, CH_CRLF, CH_END };

struct conn {
    int fd;
    enum state state;
    int subscribed;
    /* head: bytes of the HTTP response head read so far */
    char *head;
    size_t head_len;
    /* WebSocket: bytes of an incomplete frame carried to the next read */
    uint8_t *carry;
    size_t carry_len, carry_cap;
    /* SSE: chunked decoder and the current line */
    enum chunk_state chunk;
    uint64_t chunk_left;
    char line[LINE_MAX_BYTES];
    size_t line_len;
    int event_kind; /* SSE_* below */
    int event_has_ts, event_has_seq, event_has_offset;
    int64_t event_ts, event_seq, event_offset;
    char event_topic[64];
    size_t event_topic_len;
    /* sequence check: per topic (by hash) the last seq held; 0 = free slot */
    uint64_t topic_hash[TOPIC_SLOTS];
    int64_t topic_seq[TOPIC_SLOTS];
    int64_t last_offset;
    int64_t peer_seq; /* --payload peer: the last seq received, -1 before the first */
    int group;        /* --mix: which pattern list this client subscribed to */
    int evicted;      /* the server said so (close 4008, SSE `end`) before closing */
};

enum { SSE_OTHER, SSE_SNAPSHOT, SSE_DELTA, SSE_HEARTBEAT, SSE_END, SSE_RESET };

/* What the verifier counted: one set since the start, one for the window. */
struct verify {
    uint64_t checked, verified, gaps, repeats, no_snapshot, untracked, offset_backwards;
    uint64_t conflations, stale, evictions, resets, closed_other, malformed;
};

static struct {
    enum mode mode;
    int port;
    int ports[MAX_PORTS];
    int nports;
    int clients;
    double connect_rate;
    int max_inflight;
    double max_seconds;
    double ready_timeout_s;
    const char *topics;
    enum payload payload;
    const char *replay;
} opt = {MODE_WS, 0, {0}, 0, 100, 2000.0, 256, 600.0, 60.0, "quote.*", PAYLOAD_TICKER, NULL};

/* --mix "70:quote.*;20:book.BTC-USD;10:quote.*,ticker.*,book.*,trade.*": client i
 * takes the group where i mod (sum of weights) falls (so the shares are exact). */
static struct {
    int weight;
    char patterns[256]; /* comma-separated */
} mix[MAX_MIX];
static int nmix, mix_total;
static long group_clients[MAX_MIX];

static struct conn *conns;
static int epfd;
static uint8_t *rbuf;

/* totals since start */
static long started, established, subscribed, failed, closed_by_peer, errors;
static long lost_unsubscribed; /* closed before their first data message */
static long inflight;
/* the measurement window */
static int measuring;
static double window_start;
static double cpu_start;
static uint64_t deliveries, frames, bytes_in, reads, negative, pings;
static uint64_t *hist_linear;
static uint64_t hist_log[LOG_BUCKETS];
static int64_t lat_max;
/* verification: since the start (a gap is never acceptable) and in the window */
static struct verify vt, vw;
static uint64_t group_deliveries[MAX_MIX];

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int floor_log2(uint64_t v) {
    int r = 0;
    while (v >>= 1) r++;
    return r;
}

#define COUNT(field) (vt.field++, vw.field++)

static uint64_t unexplained(const struct verify *v) {
    return v->gaps + v->repeats + v->no_snapshot + v->untracked + v->offset_backwards +
           v->resets + v->closed_other + v->malformed;
}

/* A verified data message: a delivery, with its latency. */
static void record(struct conn *c, int64_t ts_us, int64_t now_us) {
    if (!c->subscribed) { /* its first data message: the subscribe snapshot */
        c->subscribed = 1;
        subscribed++;
    }
    COUNT(verified);
    if (!measuring) return;
    deliveries++;
    group_deliveries[c->group]++;
    int64_t lat = now_us - ts_us;
    if (lat < 0) {
        negative++;
        lat = 0;
    }
    if (lat > lat_max) lat_max = lat;
    if (lat < LINEAR_US)
        hist_linear[lat]++;
    else
        hist_log[floor_log2((uint64_t)lat)]++;
}

/* The latency at quantile q, in us (upper edge of log buckets). */
static int64_t quantile(double q) {
    uint64_t total = 0;
    for (int i = 0; i < LINEAR_US; i++) total += hist_linear[i];
    for (int i = 0; i < LOG_BUCKETS; i++) total += hist_log[i];
    if (!total) return -1;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < LINEAR_US; i++) {
        seen += hist_linear[i];
        if (seen > rank) return i;
    }
    for (int i = 0; i < LOG_BUCKETS; i++) {
        seen += hist_log[i];
        if (seen > rank) return (int64_t)((i < 62 ? (2LL << i) : INT64_MAX) - 1);
    }
    return lat_max;
}

static void close_conn(struct conn *c, int as_error) {
    if (c->state == ST_CLOSED) return;
    if (!c->subscribed) lost_unsubscribed++;
    if (c->state == ST_CONNECTING || c->state == ST_HEAD) {
        inflight--;
        failed++;
    } else if (as_error) {
        errors++;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_CLOSED;
    free(c->head);
    c->head = NULL;
    free(c->carry);
    c->carry = NULL;
    c->carry_len = c->carry_cap = 0;
}

/* ---- msgpack: just enough to find data messages and their ts ------------------ */

static const uint8_t *mp_skip(const uint8_t *p, const uint8_t *end, int depth);

static int need(const uint8_t *p, const uint8_t *end, size_t n) {
    return (size_t)(end - p) >= n;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Skip `count` objects; NULL if malformed or truncated. */
static const uint8_t *mp_skip_n(const uint8_t *p, const uint8_t *end, uint64_t count,
                                int depth) {
    for (uint64_t i = 0; i < count && p; i++) p = mp_skip(p, end, depth);
    return p;
}

static const uint8_t *mp_skip(const uint8_t *p, const uint8_t *end, int depth) {
    if (depth > MSGPACK_MAX_DEPTH || !need(p, end, 1)) return NULL;
    uint8_t t = *p++;
    uint64_t n;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return p;
    if ((t & 0xf0) == 0x80) return mp_skip_n(p, end, 2ull * (t & 0x0f), depth + 1);
    if ((t & 0xf0) == 0x90) return mp_skip_n(p, end, t & 0x0f, depth + 1);
    if ((t & 0xe0) == 0xa0) n = t & 0x1f;
    else switch (t) {
        case 0xcc: case 0xd0: n = 1; break;
        case 0xcd: case 0xd1: n = 2; break;
        case 0xce: case 0xd2: case 0xca: n = 4; break;
        case 0xcf: case 0xd3: case 0xcb: n = 8; break;
        case 0xd4: n = 2; break;
        case 0xd5: n = 3; break;
        case 0xd6: n = 5; break;
        case 0xd7: n = 9; break;
        case 0xd8: n = 17; break;
        case 0xc4: case 0xd9:
            if (!need(p, end, 1)) return NULL;
            n = p[0]; p += 1; break;
        case 0xc5: case 0xda:
            if (!need(p, end, 2)) return NULL;
            n = be(p, 2); p += 2; break;
        case 0xc6: case 0xdb:
            if (!need(p, end, 4)) return NULL;
            n = be(p, 4); p += 4; break;
        case 0xc7:
            if (!need(p, end, 2)) return NULL;
            n = p[0] + 1ull; p += 1; break;
        case 0xc8:
            if (!need(p, end, 3)) return NULL;
            n = be(p, 2) + 1; p += 2; break;
        case 0xc9:
            if (!need(p, end, 5)) return NULL;
            n = be(p, 4) + 1; p += 4; break;
        case 0xdc:
            if (!need(p, end, 2)) return NULL;
            return mp_skip_n(p + 2, end, be(p, 2), depth + 1);
        case 0xdd:
            if (!need(p, end, 4)) return NULL;
            return mp_skip_n(p + 4, end, be(p, 4), depth + 1);
        case 0xde:
            if (!need(p, end, 2)) return NULL;
            return mp_skip_n(p + 2, end, 2 * be(p, 2), depth + 1);
        case 0xdf:
            if (!need(p, end, 4)) return NULL;
            return mp_skip_n(p + 4, end, 2 * be(p, 4), depth + 1);
        default: return NULL; /* 0xc1 is never used */
    }
    return need(p, end, n) ? p + n : NULL;
}

static const uint8_t *mp_array(const uint8_t *p, const uint8_t *end, uint64_t *n) {
    if (!need(p, end, 1)) return NULL;
    uint8_t t = *p;
    if ((t & 0xf0) == 0x90) { *n = t & 0x0f; return p + 1; }
    if (t == 0xdc && need(p, end, 3)) { *n = be(p + 1, 2); return p + 3; }
    if (t == 0xdd && need(p, end, 5)) { *n = be(p + 1, 4); return p + 5; }
    return NULL;
}

static const uint8_t *mp_uint(const uint8_t *p, const uint8_t *end, int64_t *v) {
    if (!need(p, end, 1)) return NULL;
    uint8_t t = *p++;
    int n;
    if (t <= 0x7f) { *v = t; return p; }
    switch (t) {
        case 0xcc: n = 1; break;
        case 0xcd: n = 2; break;
        case 0xce: n = 4; break;
        case 0xcf: n = 8; break;
        case 0xd3: n = 8; break; /* int64 holding a positive value */
        default: return NULL;
    }
    if (!need(p, end, (size_t)n)) return NULL;
    *v = (int64_t)be(p, n);
    return p + n;
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h | 1; /* never 0: 0 marks a free slot */
}

/* The protocol's rules for one data message on connection c (see the header).
 * Returns 1 when the message is verified (a delivery), 0 when it is not. */
static int check_seq(struct conn *c, int is_snapshot, const uint8_t *topic, size_t topic_len,
                     int64_t seq, int64_t offset) {
    COUNT(checked);
    int ok = 1;
    /* Burst snapshots carry the offset of their topic's last message, older than other
     * topics': only a delta must come after everything received before it. */
    if (!is_snapshot && offset <= c->last_offset) {
        COUNT(offset_backwards);
        ok = 0;
    }
    if (offset > c->last_offset) c->last_offset = offset;
    int is_event = topic_len > 6 && memcmp(topic, "trade.", 6) == 0;
    uint64_t h = fnv1a(topic, topic_len);
    int slot = -1;
    for (int i = 0; i < TOPIC_SLOTS; i++) {
        if (c->topic_hash[i] == h) { slot = i; break; }
        if (c->topic_hash[i] == 0) {
            if (!is_snapshot) { COUNT(no_snapshot); return 0; }
            c->topic_hash[i] = h;
            c->topic_seq[i] = seq;
            return ok;
        }
    }
    if (slot < 0) { COUNT(untracked); return 0; }
    int64_t last = c->topic_seq[slot];
    if (is_snapshot) {
        if (seq < last) { COUNT(stale); return 0; } /* a stale repeat: ignored, no delivery */
        if (seq > last + 1) {
            if (is_event) { COUNT(gaps); ok = 0; } /* a trade was lost */
            else COUNT(conflations);
        }
        c->topic_seq[slot] = seq;
        return ok;
    }
    if (seq == last + 1) { c->topic_seq[slot] = seq; return ok; }
    if (seq <= last) { COUNT(repeats); return 0; }
    COUNT(gaps);
    c->topic_seq[slot] = seq; /* resynchronise, so one hole counts once */
    return 0;
}

/* A heartbeat: written after everything up to its position. */
static void check_heartbeat(struct conn *c, int64_t offset) {
    if (offset < c->last_offset) COUNT(offset_backwards);
    else c->last_offset = offset;
}

/* --payload peer: one seq per connection, rising by exactly one. */
static int check_peer(struct conn *c, int64_t seq) {
    COUNT(checked);
    int64_t last = c->peer_seq;
    c->peer_seq = seq > last ? seq : last;
    if (last < 0 || seq == last + 1) return 1;
    if (seq <= last) COUNT(repeats);
    else COUNT(gaps);
    return 0;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int64_t now_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const uint8_t *mp_str(const uint8_t *p, const uint8_t *end, const uint8_t **s, size_t *n) {
    if (!need(p, end, 1)) return NULL;
    uint8_t t = *p++;
    if ((t & 0xe0) == 0xa0) *n = t & 0x1f;
    else if (t == 0xd9 && need(p, end, 1)) { *n = p[0]; p += 1; }
    else if (t == 0xda && need(p, end, 2)) { *n = be(p, 2); p += 2; }
    else return NULL;
    if (!need(p, end, *n)) return NULL;
    *s = p;
    return p + *n;
}

/* One WebSocket binary payload: concatenated msgpack messages. Returns -1 if malformed. */
static int parse_payload(struct conn *c, const uint8_t *p, const uint8_t *end, int64_t now) {
    if (opt.payload == PAYLOAD_PEER) {
        if (end - p < 16) return -1;
        int64_t ts_us = (int64_t)(le64(p) / 1000);
        if (check_peer(c, (int64_t)le64(p + 8))) record(c, ts_us, now_mono_us());
        return 0;
    }
    while (p < end) {
        uint64_t n;
        p = mp_array(p, end, &n);
        if (!p) return -1;
        if (n == 0) continue;
        int is_data = 0;
        if (need(p, end, 2) && p[0] == 0xa1 && (p[1] == 's' || p[1] == 'd')) is_data = 1;
        if (is_data && n >= 5) {
            int64_t ts, seq, offset;
            const uint8_t *topic;
            size_t topic_len;
            int is_snapshot = p[1] == 's';
            p += 2; /* type */
            p = mp_str(p, end, &topic, &topic_len);
            if (!p) return -1;
            p = mp_uint(p, end, &seq);
            if (!p) return -1;
            p = mp_uint(p, end, &offset);
            if (!p) return -1;
            int ok = check_seq(c, is_snapshot, topic, topic_len, seq, offset);
            p = mp_uint(p, end, &ts);
            if (!p) return -1;
            p = mp_skip_n(p, end, n - 5, 1);
            if (!p) return -1;
            if (ok) record(c, ts, now);
        } else if (n == 4 && need(p, end, 3) && p[0] == 0xa2 && p[1] == 'h' && p[2] == 'b') {
            int64_t epoch, offset;
            p = mp_uint(p + 3, end, &epoch);
            if (!p) return -1;
            p = mp_uint(p, end, &offset);
            if (!p) return -1;
            check_heartbeat(c, offset);
            p = mp_skip_n(p, end, 1, 1);
            if (!p) return -1;
        } else {
            if (need(p, end, 2) && p[0] == 0xa1 && p[1] == 'r') COUNT(resets);
            p = mp_skip_n(p, end, n, 1);
            if (!p) return -1;
        }
    }
    return 0;
}

static void send_pong(struct conn *c, const uint8_t *payload, size_t len) {
    uint8_t frame[2 + 4 + 125];
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    if (len > 125) len = 125;
    frame[0] = 0x8A;
    frame[1] = 0x80 | (uint8_t)len;
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
    if (send(c->fd, frame, 6 + len, MSG_NOSIGNAL) != (ssize_t)(6 + len)) errors++;
}

/* Whole frames in buf[0..len); returns bytes consumed, or -1 on a protocol error. */
static ssize_t parse_frames(struct conn *c, const uint8_t *buf, size_t len, int64_t now) {
    size_t pos = 0;
    while (len - pos >= 2) {
        const uint8_t *f = buf + pos;
        int fin = f[0] & 0x80, opcode = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t hdr = 2;
        if (f[1] & 0x80) return -1; /* a server must not mask */
        if (plen == 126) {
            if (len - pos < 4) break;
            plen = be(f + 2, 2);
            hdr = 4;
        } else if (plen == 127) {
            if (len - pos < 10) break;
            plen = be(f + 2, 8);
            hdr = 10;
        }
        if (plen > MAX_FRAME) return -1;
        if (len - pos < hdr + plen) break;
        const uint8_t *payload = f + hdr;
        if (measuring) frames++;
        if (opcode == 0x2 && fin) {
            if (parse_payload(c, payload, payload + plen, now) < 0) return -1;
        } else if (opcode == 0x9) {
            pings++;
            send_pong(c, payload, plen);
        } else if (opcode == 0x8) {
            int code = plen >= 2 ? (int)be(payload, 2) : 1005;
            if (code == 4008) {
                COUNT(evictions);
                c->evicted = 1;
            } else {
                COUNT(closed_other);
                fprintf(stderr, "loadgen: server closed with %d: %.*s\n", code,
                        plen > 2 ? (int)(plen - 2) : 0, (const char *)payload + 2);
            }
            return -2;
        } else if (opcode != 0xA) {
            return -1; /* text, or a fragmented message: not what the server sends */
        }
        pos += hdr + plen;
    }
    return (ssize_t)pos;
}

/* ---- SSE ------------------------------------------------------------------------ */

/* The integer after `key` (e.g. `"seq":`) in s[0..n); 0 if absent. */
static int json_int(const char *s, size_t n, const char *key, int64_t *out) {
    size_t kl = strlen(key);
    const char *k = memmem(s, n, key, kl);
    if (!k) return 0;
    const char *q = k + kl, *e = s + n;
    int64_t v = 0;
    int digits = 0;
    while (q < e && *q >= '0' && *q <= '9') { v = v * 10 + (*q++ - '0'); digits++; }
    if (digits) *out = v;
    return digits > 0;
}

static void sse_line(struct conn *c, const char *s, size_t n, int64_t now) {
    if (n && s[n - 1] == '\r') n--;
    if (n == 0) { /* the end of an event */
        int kind = c->event_kind;
        if (kind == SSE_SNAPSHOT || kind == SSE_DELTA) {
            if (c->event_has_ts && c->event_has_seq && c->event_has_offset &&
                c->event_topic_len) {
                if (check_seq(c, kind == SSE_SNAPSHOT, (const uint8_t *)c->event_topic,
                              c->event_topic_len, c->event_seq, c->event_offset))
                    record(c, c->event_ts, now);
            } else {
                COUNT(malformed);
            }
        } else if (kind == SSE_HEARTBEAT && c->event_has_offset) {
            check_heartbeat(c, c->event_offset);
        }
        c->event_kind = SSE_OTHER;
        c->event_has_ts = c->event_has_seq = c->event_has_offset = 0;
        c->event_topic_len = 0;
        return;
    }
    if (n > 7 && memcmp(s, "event: ", 7) == 0) {
        const char *name = s + 7;
        size_t len = n - 7;
#define IS(word) (len == sizeof(word) - 1 && memcmp(name, word, len) == 0)
        c->event_kind = IS("snapshot")    ? SSE_SNAPSHOT
                        : IS("delta")     ? SSE_DELTA
                        : IS("heartbeat") ? SSE_HEARTBEAT
                        : IS("end")       ? SSE_END
                        : IS("reset")     ? SSE_RESET
                                          : SSE_OTHER;
#undef IS
        if (c->event_kind == SSE_END) {
            COUNT(evictions);
            c->evicted = 1;
        } else if (c->event_kind == SSE_RESET) {
            COUNT(resets);
        }
    } else if (c->event_kind != SSE_OTHER && n > 6 && memcmp(s, "data: ", 6) == 0) {
        /* The leading keys come first (topic, seq, offset, ts, then data), so a line
         * cut at LINE_MAX_BYTES still holds them; search only up to "data". */
        const char *data = memmem(s, n, "\"data\":", 7);
        size_t head = data ? (size_t)(data - s) : n;
        c->event_has_ts = json_int(s, head, "\"ts\":", &c->event_ts);
        c->event_has_seq = json_int(s, head, "\"seq\":", &c->event_seq);
        c->event_has_offset = json_int(s, head, "\"offset\":", &c->event_offset);
        const char *t = memmem(s, head, "\"topic\":\"", 9);
        if (t) {
            const char *q = t + 9, *e = s + head;
            const char *close = memchr(q, '"', (size_t)(e - q));
            size_t tl = close ? (size_t)(close - q) : 0;
            if (tl < sizeof c->event_topic) {
                memcpy(c->event_topic, q, tl);
                c->event_topic_len = tl;
            }
        }
    }
}

static void sse_body(struct conn *c, const char *p, size_t n, int64_t now) {
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            size_t room = LINE_MAX_BYTES - c->line_len;
            size_t take = n < room ? n : room; /* a longer line is truncated: ts is early */
            memcpy(c->line + c->line_len, p, take);
            c->line_len += take;
            return;
        }
        size_t seg = (size_t)(nl - p);
        if (c->line_len == 0) {
            sse_line(c, p, seg, now);
        } else {
            size_t room = LINE_MAX_BYTES - c->line_len;
            size_t take = seg < room ? seg : room;
            memcpy(c->line + c->line_len, p, take);
            sse_line(c, c->line, c->line_len + take, now);
            c->line_len = 0;
        }
        p = nl + 1;
        n -= seg + 1;
    }
}

/* The chunked transfer coding around the event stream. Returns -1 on a protocol error. */
static int sse_chunks(struct conn *c, const char *p, size_t n, int64_t now) {
    while (n > 0) {
        switch (c->chunk) {
            case CH_SIZE: {
                char ch = *p++;
                n--;
                if (ch == '\n') {
                    c->chunk = c->chunk_left ? CH_DATA : CH_END;
                } else if (ch >= '0' && ch <= '9') {
                    c->chunk_left = c->chunk_left * 16 + (uint64_t)(ch - '0');
                } else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') {
                    c->chunk_left = c->chunk_left * 16 + (uint64_t)((ch | 0x20) - 'a' + 10);
                } else if (ch != '\r') {
                    return -1;
                }
                break;
            }
            case CH_DATA: {
                size_t take = n < c->chunk_left ? n : (size_t)c->chunk_left;
                sse_body(c, p, take, now);
                p += take;
                n -= take;
                c->chunk_left -= take;
                if (!c->chunk_left) c->chunk = CH_CRLF;
                break;
            }
            case CH_CRLF:
                if (*p == '\n') c->chunk = CH_SIZE;
                p++;
                n--;
                break;
            case CH_END:
                return -2; /* the server ended the stream */
        }
    }
    return 0;
}

/* ---- connections ---------------------------------------------------------------- */

static const uint8_t SUBSCRIBE_MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* The comma-separated patterns connection c subscribes to. */
static const char *conn_topics(const struct conn *c) {
    return nmix ? mix[c->group].patterns : opt.topics;
}

/* The group of client `index` under --mix (0 without it). */
static int group_of(int index) {
    if (!nmix) return 0;
    int r = index % mix_total;
    for (int g = 0; g < nmix; g++) {
        if (r < mix[g].weight) return g;
        r -= mix[g].weight;
    }
    return nmix - 1;
}

static void send_request(struct conn *c) {
    char req[512];
    int n;
    if (opt.mode == MODE_WS) {
        n = snprintf(req, sizeof req,
                     "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ticker.v1\r\n\r\n",
                     opt.ports[(c - conns) % opt.nports]);
    } else {
        n = snprintf(req, sizeof req,
                     "GET /v1/sse?topics=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     conn_topics(c), opt.ports[(c - conns) % opt.nports]);
    }
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) close_conn(c, 1);
}

static void send_subscribe(struct conn *c) {
    /* msgpack ["sub", [pattern, ...], null] in one masked binary frame */
    uint8_t payload[512], frame[520];
    const char *topics = conn_topics(c);
    size_t n = 0;
    int count = 0;
    payload[n++] = 0x93;
    payload[n++] = 0xa3;
    memcpy(payload + n, "sub", 3);
    n += 3;
    size_t array_at = n++;
    for (const char *p = topics; *p && count < MAX_PATTERNS;) {
        const char *comma = strchr(p, ',');
        size_t tl = comma ? (size_t)(comma - p) : strlen(p);
        if (tl > 31) tl = 31;
        payload[n++] = (uint8_t)(0xa0 | tl);
        memcpy(payload + n, p, tl);
        n += tl;
        count++;
        p += comma ? (size_t)(comma - p) + 1 : strlen(p);
    }
    payload[array_at] = (uint8_t)(0x90 | count);
    payload[n++] = 0xc0;
    frame[0] = 0x82;
    frame[1] = (uint8_t)(0x80 | n); /* n < 126: at most 8 patterns of 31 bytes... */
    if (n >= 126) {                 /* ...or a 16-bit length */
        frame[1] = 0x80 | 126;
        frame[2] = (uint8_t)(n >> 8);
        frame[3] = (uint8_t)n;
    }
    size_t hdr = n >= 126 ? 4 : 2;
    memcpy(frame + hdr, SUBSCRIBE_MASK, 4);
    for (size_t i = 0; i < n; i++) frame[hdr + 4 + i] = payload[i] ^ SUBSCRIBE_MASK[i % 4];
    if (send(c->fd, frame, hdr + 4 + n, MSG_NOSIGNAL) != (ssize_t)(hdr + 4 + n))
        close_conn(c, 1);
}

static void start_connection(int index) {
    struct conn *c = &conns[index];
    memset(c, 0, sizeof *c);
    c->peer_seq = -1;
    c->group = group_of(index);
    group_clients[c->group]++;
    started++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        c->state = ST_CLOSED;
        failed++;
        lost_unsubscribed++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt.ports[index % opt.nports]);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = fd;
    c->state = ST_CONNECTING;
    inflight++;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)index};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        c->state = ST_CLOSED;
        inflight--;
        failed++;
        lost_unsubscribed++;
        return;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        close_conn(c, 1);
}

static void on_connected(struct conn *c, int index) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        close_conn(c, 1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)index};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->state = ST_HEAD;
    c->head = malloc(MAX_HEAD);
    c->head_len = 0;
    send_request(c);
}

/* Bytes after the head (or after the previous read's incomplete frame). */
static void on_stream_bytes(struct conn *c, uint8_t *data, size_t n, int64_t now) {
    if (opt.mode == MODE_SSE) {
        int r = sse_chunks(c, (const char *)data, n, now);
        if (r == -1) COUNT(malformed);
        if (r == -2 && !c->evicted) COUNT(closed_other);
        if (r < 0) close_conn(c, r == -1);
        return;
    }
    /* WebSocket: data is rbuf (or the head's tail); put any carried bytes in front */
    uint8_t *buf = data;
    size_t len = n;
    if (c->carry_len) {
        if (c->carry_len + n > c->carry_cap) {
            size_t cap = c->carry_cap ? c->carry_cap : 4096;
            while (cap < c->carry_len + n) cap *= 2;
            uint8_t *grown = realloc(c->carry, cap);
            if (!grown) {
                close_conn(c, 1);
                return;
            }
            c->carry = grown;
            c->carry_cap = cap;
        }
        memcpy(c->carry + c->carry_len, data, n);
        buf = c->carry;
        len = c->carry_len + n;
    }
    ssize_t used = parse_frames(c, buf, len, now);
    if (used < 0) {
        if (used == -1) COUNT(malformed);
        close_conn(c, used == -1);
        return;
    }
    size_t rest = len - (size_t)used;
    if (rest > MAX_FRAME + 16) {
        close_conn(c, 1);
        return;
    }
    if (rest && buf != c->carry) {
        if (rest > c->carry_cap) {
            size_t cap = c->carry_cap ? c->carry_cap : 4096;
            while (cap < rest) cap *= 2;
            uint8_t *grown = realloc(c->carry, cap);
            if (!grown) {
                close_conn(c, 1);
                return;
            }
            c->carry = grown;
            c->carry_cap = cap;
        }
        memcpy(c->carry, buf + used, rest);
    } else if (rest) {
        memmove(c->carry, c->carry + used, rest);
    }
    c->carry_len = rest;
}

static void on_head(struct conn *c, uint8_t *data, size_t n, int64_t now) {
    size_t room = MAX_HEAD - c->head_len;
    size_t take = n < room ? n : room;
    memcpy(c->head + c->head_len, data, take);
    c->head_len += take;
    char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    if (!end) {
        if (c->head_len == MAX_HEAD) close_conn(c, 1);
        return;
    }
    const char *want = opt.mode == MODE_WS ? "HTTP/1.1 101" : "HTTP/1.1 200";
    if (c->head_len < 12 || memcmp(c->head, want, 12) != 0) {
        fprintf(stderr, "loadgen: unexpected response: %.60s\n", c->head);
        close_conn(c, 1);
        return;
    }
    size_t head_size = (size_t)(end + 4 - c->head);
    size_t extra = c->head_len - head_size;
    uint8_t tail[MAX_HEAD];
    memcpy(tail, c->head + head_size, extra);
    free(c->head);
    c->head = NULL;
    c->state = ST_OPEN;
    c->chunk = CH_SIZE;
    inflight--;
    established++;
    if (opt.mode == MODE_WS) send_subscribe(c);
    if (c->state == ST_OPEN && extra) on_stream_bytes(c, tail, extra, now);
    if (take < n && c->state == ST_OPEN) on_stream_bytes(c, data + take, n - take, now);
}

static void on_readable(struct conn *c) {
    ssize_t n = recv(c->fd, rbuf, READ_BUFFER, 0);
    if (n == 0) {
        closed_by_peer++;
        if (c->state == ST_OPEN && !c->evicted) COUNT(closed_other);
        close_conn(c, 1);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) close_conn(c, 1);
        return;
    }
    int64_t now = now_wall_us();
    if (measuring) {
        reads++;
        bytes_in += (uint64_t)n;
    }
    if (c->state == ST_HEAD)
        on_head(c, rbuf, (size_t)n, now);
    else
        on_stream_bytes(c, rbuf, (size_t)n, now);
}

/* ---- control --------------------------------------------------------------------- */

static long count_open(void) {
    long n = 0;
    for (int i = 0; i < opt.clients; i++) n += conns[i].state == ST_OPEN;
    return n;
}

static void print_ready(double connect_s) {
    printf("{\"event\":\"ready\",\"clients\":%d,\"started\":%ld,\"established\":%ld,"
           "\"subscribed\":%ld,\"failed\":%ld,\"errors\":%ld,\"open\":%ld,\"connect_s\":%.3f}\n",
           opt.clients, started, established, subscribed, failed, errors, count_open(),
           connect_s);
    fflush(stdout);
}

/* The verifier's counts as JSON members (no braces), each name prefixed. */
static void print_verify(const char *prefix, const struct verify *v) {
    printf("\"%schecked\":%llu,\"%sverified\":%llu,\"%sgaps\":%llu,\"%srepeats\":%llu,"
           "\"%sno_snapshot\":%llu,\"%suntracked\":%llu,\"%soffset_backwards\":%llu,"
           "\"%sconflations\":%llu,\"%sstale\":%llu,\"%sevictions\":%llu,\"%sresets\":%llu,"
           "\"%sclosed_other\":%llu,\"%smalformed\":%llu,\"%sunexplained\":%llu",
           prefix, (unsigned long long)v->checked, prefix, (unsigned long long)v->verified,
           prefix, (unsigned long long)v->gaps, prefix, (unsigned long long)v->repeats, prefix,
           (unsigned long long)v->no_snapshot, prefix, (unsigned long long)v->untracked, prefix,
           (unsigned long long)v->offset_backwards, prefix, (unsigned long long)v->conflations,
           prefix, (unsigned long long)v->stale, prefix, (unsigned long long)v->evictions,
           prefix, (unsigned long long)v->resets, prefix, (unsigned long long)v->closed_other,
           prefix, (unsigned long long)v->malformed, prefix,
           (unsigned long long)unexplained(v));
}

static void start_window(void) {
    memset(hist_linear, 0, sizeof(uint64_t) * LINEAR_US);
    memset(hist_log, 0, sizeof hist_log);
    memset(&vw, 0, sizeof vw);
    memset(group_deliveries, 0, sizeof group_deliveries);
    deliveries = frames = bytes_in = reads = negative = pings = 0;
    lat_max = 0;
    window_start = now_mono();
    cpu_start = cpu_seconds();
    measuring = 1;
}

static void stop_window(void) {
    double seconds = now_mono() - window_start;
    double cpu = cpu_seconds() - cpu_start;
    measuring = 0;
    printf("{\"event\":\"window\",\"deliveries\":%llu,\"seconds\":%.4f,"
           "\"deliveries_per_s\":%.1f,\"p50_us\":%lld,\"p99_us\":%lld,\"p999_us\":%lld,"
           "\"max_us\":%lld,\"negative\":%llu,\"cpu_s\":%.4f,\"cpu_frac\":%.4f,"
           "\"frames\":%llu,\"reads\":%llu,\"bytes\":%llu,\"pings\":%llu,\"errors\":%ld,"
           "\"failed\":%ld,\"closed_by_peer\":%ld,\"established\":%ld,\"open\":%ld,"
           "\"seq_checked\":%llu,\"seq_gaps\":%llu,\"seq_repeats\":%llu,"
           "\"seq_no_snapshot\":%llu,\"seq_untracked\":%llu,\"offset_backwards\":%llu,",
           (unsigned long long)deliveries, seconds, deliveries / seconds,
           (long long)quantile(0.50), (long long)quantile(0.99), (long long)quantile(0.999),
           (long long)lat_max, (unsigned long long)negative, cpu, cpu / seconds,
           (unsigned long long)frames, (unsigned long long)reads,
           (unsigned long long)bytes_in, (unsigned long long)pings, errors, failed,
           closed_by_peer, established, count_open(), (unsigned long long)vt.checked,
           (unsigned long long)vt.gaps, (unsigned long long)vt.repeats,
           (unsigned long long)vt.no_snapshot, (unsigned long long)vt.untracked,
           (unsigned long long)vt.offset_backwards);
    print_verify("w_", &vw);
    printf(",");
    print_verify("total_", &vt);
    printf(",\"groups\":[");
    for (int g = 0; g < (nmix ? nmix : 1); g++)
        printf("%s{\"patterns\":\"%s\",\"clients\":%ld,\"deliveries\":%llu}", g ? "," : "",
               nmix ? mix[g].patterns : opt.topics, group_clients[g],
               (unsigned long long)group_deliveries[g]);
    printf("]}\n");
    fflush(stdout);
}

/* --replay: one connection's stream from a file, in small reads (so frames and lines
 * are cut across reads as on a socket), then its verification as one JSON line. */
static int replay(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror("loadgen: replay");
        return 1;
    }
    conns = calloc(1, sizeof *conns);
    hist_linear = calloc(LINEAR_US, sizeof(uint64_t));
    if (!conns || !hist_linear) return 1;
    epfd = -1;
    struct conn *c = &conns[0];
    c->fd = -1;
    c->state = ST_OPEN;
    c->chunk = CH_SIZE;
    c->peer_seq = -1;
    opt.clients = 1;
    start_window();
    uint8_t buf[7];
    size_t n;
    while (c->state == ST_OPEN && (n = fread(buf, 1, sizeof buf, f)) > 0)
        on_stream_bytes(c, buf, n, now_wall_us());
    fclose(f);
    printf("{\"event\":\"replay\",\"deliveries\":%llu,\"open\":%d,",
           (unsigned long long)deliveries, c->state == ST_OPEN);
    print_verify("", &vt);
    printf("}\n");
    return 0;
}

/* Returns 1 when told to quit (or stdin closed). */
static int on_stdin(char *buf, size_t *len) {
    ssize_t n = read(0, buf + *len, 255 - *len);
    if (n <= 0) return 1;
    *len += (size_t)n;
    char *nl;
    while ((nl = memchr(buf, '\n', *len)) != NULL) {
        *nl = 0;
        if (strcmp(buf, "start") == 0) start_window();
        else if (strcmp(buf, "stop") == 0) stop_window();
        else if (strcmp(buf, "quit") == 0) return 1;
        else fprintf(stderr, "loadgen: unknown command %s\n", buf);
        size_t used = (size_t)(nl - buf) + 1;
        memmove(buf, nl + 1, *len - used);
        *len -= used;
    }
    if (*len >= 255) *len = 0;
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode ws|sse --port P[,P2...] --clients N [--connect-rate R] "
            "[--max-inflight K] [--max-seconds T] [--ready-timeout T] [--topics T]\n"
            "               [--mix W:P,P;W:P...] [--payload ticker|peer] [--replay FILE]\n");
    exit(2);
}

static void parse_mix(const char *spec) {
    const char *p = spec;
    nmix = mix_total = 0;
    while (*p) {
        if (nmix == MAX_MIX) usage();
        char *rest;
        long w = strtol(p, &rest, 10);
        if (w <= 0 || *rest != ':') usage();
        rest++;
        const char *semi = strchr(rest, ';');
        size_t len = semi ? (size_t)(semi - rest) : strlen(rest);
        if (len == 0 || len >= sizeof mix[0].patterns) usage();
        memcpy(mix[nmix].patterns, rest, len);
        mix[nmix].patterns[len] = 0;
        mix[nmix].weight = (int)w;
        mix_total += (int)w;
        nmix++;
        p = semi ? semi + 1 : rest + len;
    }
    if (!nmix) usage();
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--mode")) opt.mode = !strcmp(v, "sse") ? MODE_SSE : MODE_WS;
        else if (!strcmp(a, "--port")) {
            char *rest = (char *)v;
            opt.nports = 0;
            while (*rest && opt.nports < MAX_PORTS) {
                long port = strtol(rest, &rest, 10);
                if (port <= 0 || port > 65535) usage();
                opt.ports[opt.nports++] = (int)port;
                if (*rest == ',') rest++;
                else if (*rest) usage();
            }
            opt.port = opt.nports ? opt.ports[0] : 0;
        }
        else if (!strcmp(a, "--clients")) opt.clients = atoi(v);
        else if (!strcmp(a, "--connect-rate")) opt.connect_rate = atof(v);
        else if (!strcmp(a, "--max-inflight")) opt.max_inflight = atoi(v);
        else if (!strcmp(a, "--max-seconds")) opt.max_seconds = atof(v);
        else if (!strcmp(a, "--ready-timeout")) opt.ready_timeout_s = atof(v);
        else if (!strcmp(a, "--topics")) opt.topics = v;
        else if (!strcmp(a, "--payload")) opt.payload = !strcmp(v, "peer") ? PAYLOAD_PEER : PAYLOAD_TICKER;
        else if (!strcmp(a, "--replay")) opt.replay = v;
        else if (!strcmp(a, "--mix")) parse_mix(v);
        else usage();
    }
    if (opt.replay) return replay(opt.replay);
    if (opt.port <= 0 || opt.clients <= 0 || opt.connect_rate <= 0 || opt.max_inflight <= 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    conns = calloc((size_t)opt.clients, sizeof *conns);
    rbuf = malloc(READ_BUFFER);
    hist_linear = calloc(LINEAR_US, sizeof(uint64_t));
    epfd = epoll_create1(0);
    if (!conns || !rbuf || !hist_linear || epfd < 0) {
        perror("loadgen: setup");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);

    struct epoll_event events[MAX_EVENTS];
    char cmd[256];
    size_t cmd_len = 0;
    double t0 = now_mono();
    int ready_sent = 0, done = 0;
    while (!done) {
        double now = now_mono();
        if (now - t0 > opt.max_seconds) {
            fprintf(stderr, "loadgen: --max-seconds reached, exiting\n");
            break;
        }
        /* connect at a bounded rate, with a bounded number of handshakes in flight */
        long allowed = (long)((now - t0) * opt.connect_rate) + 1;
        while (started < opt.clients && started < allowed && inflight < opt.max_inflight)
            start_connection((int)started);
        if (!ready_sent) {
            long settled = subscribed + lost_unsubscribed;
            if ((started == opt.clients && settled >= opt.clients) ||
                now - t0 > opt.ready_timeout_s) {
                print_ready(now - t0);
                ready_sent = 1;
            }
        }
        int timeout_ms = started < opt.clients || !ready_sent ? 1 : 50;
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
        for (int i = 0; i < n; i++) {
            uint32_t id = events[i].data.u32;
            if (id == UINT32_MAX) {
                if (on_stdin(cmd, &cmd_len)) done = 1;
                continue;
            }
            struct conn *c = &conns[id];
            if (c->state == ST_CONNECTING) {
                on_connected(c, (int)id);
            } else if (c->state != ST_CLOSED) {
                if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
            }
        }
    }
    for (int i = 0; i < started; i++) {
        if (conns[i].state != ST_CLOSED) {
            close(conns[i].fd);
            conns[i].state = ST_CLOSED;
        }
    }
    return 0;
}
