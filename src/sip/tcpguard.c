/*
 * tcpguard.c - caps on SIP over TCP connections: at most --sip-tcp-max-connections at once,
 * at most --sip-tcp-max-connections-per-ip from one address.
 *
 * sofia-sip 1.12 accepts every connection its TCP listener is offered and has no cap of its
 * own, its idle timeout (TPTAG_IDLE) spares a connection that never carried a message, and
 * nua does not expose its transports. So a flood of idle connections would take every
 * descriptor the process has, and with them the API that ends calls. Once a second, on the SIP
 * thread, the guard asks the kernel (sock_diag, one netlink dump) for the established TCP
 * connections accepted on our SIP port (our own connections out use other ports), with how
 * long each has carried no data either way. It shuts down those unused for
 * --sip-tcp-idle-timeout, then the most idle connections of each address over its cap, then
 * the most idle of all until the total fits. shutdown() (not close: the descriptor is sofia's)
 * makes sofia see the end and close its transport as for any peer that hangs up. The
 * descriptor of a connection is found by its socket inode in /proc/self/fd, only then. The
 * netlink socket and /proc/self/fd stay open from the start: a flood that reached the
 * descriptor limit must not leave the guard without the two it needs to end it. While a sweep
 * sheds connections the next comes a tenth of a second later (engine.c).
 * Shed first are connections that never sent us a byte (a SIP peer sends a request or a
 * keepalive at once; a flood of idle sockets does not), then the most idle: a carrier's
 * connection that carried calls outlives a flood from many addresses. A flood that sends bytes
 * from many addresses can still push others out: the per-address cap is the defence there.
 *
 * Layering: beside media.c at the bottom of the SIP layer: engine.c runs it from a timer.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* connections looked at in one sweep at most (more are a flood anyway: the rest next time) */
#define GUARD_MAX 65536

/* the kernel's TCP states (include/net/tcp_states.h) a dump asks for */
#define STATE_ESTABLISHED 1
#define STATE_CLOSE_WAIT 8

struct conn {
	int family;
	unsigned char addr[16]; /* the peer's */
	unsigned inode;
	unsigned idle_ms; /* since data last went either way */
	bool silent;      /* nothing ever received on it */
	bool shed;
};

/* Appends the established TCP connections of family on local port to *v (n, cap), asked on
 * the netlink socket fd. -1 when the kernel cannot say (no sock_diag): the guard then does
 * nothing. */
static int dump(int fd, int family, int port, struct conn **v, size_t *n, size_t *cap)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = {.nlmsg_len = sizeof msg,
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		.req = {.sdiag_family = (unsigned char)family,
			.sdiag_protocol = IPPROTO_TCP,
			.idiag_ext = 1 << (INET_DIAG_INFO - 1),
			.idiag_states = 1u << STATE_ESTABLISHED | 1u << STATE_CLOSE_WAIT},
	};
	if (send(fd, &msg, sizeof msg, 0) != (ssize_t)sizeof msg)
		return -1;
	static _Thread_local char buf[32768];
	int rc = 0;
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof buf, 0);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0) {
			rc = -1;
			break;
		}
		struct nlmsghdr *h = (struct nlmsghdr *)(void *)buf;
		for (; NLMSG_OK(h, (unsigned)len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE)
				goto done;
			if (h->nlmsg_type == NLMSG_ERROR) {
				rc = -1;
				goto done;
			}
			struct inet_diag_msg *m = NLMSG_DATA(h);
			if (ntohs(m->id.idiag_sport) != port || *n >= GUARD_MAX)
				continue;
			if (*n == *cap) {
				size_t c = *cap ? *cap * 2 : 256;
				struct conn *nv = realloc(*v, c * sizeof *nv);
				if (!nv)
					continue;
				*v = nv;
				*cap = c;
			}
			struct conn *c = &(*v)[(*n)++];
			memset(c, 0, sizeof *c);
			c->family = family;
			memcpy(c->addr, m->id.idiag_dst, family == AF_INET ? 4 : 16);
			c->inode = m->idiag_inode;
			/* the attributes after the message: tcp_info, for how long it was quiet */
			struct rtattr *a = (struct rtattr *)(m + 1);
			int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type != INET_DIAG_INFO)
					continue;
				struct tcp_info ti = {0};
				size_t k = (size_t)RTA_PAYLOAD(a) < sizeof ti
						   ? (size_t)RTA_PAYLOAD(a)
						   : sizeof ti;
				memcpy(&ti, RTA_DATA(a), k);
				c->idle_ms = ti.tcpi_last_data_recv < ti.tcpi_last_data_sent
						     ? ti.tcpi_last_data_recv
						     : ti.tcpi_last_data_sent;
				/* tcpi_bytes_received is there since Linux 4.1 (a shorter
				 * answer leaves it 0: every connection counts as silent) */
				c->silent = ti.tcpi_bytes_received == 0;
			}
		}
	}
done:
	if (rc < 0) /* drain what is left of a broken dump before the next one */
		while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
			;
	return rc;
}

/* The order connections are shed in: those that never sent us a byte (a flood's: a SIP peer
 * sends a request or a keepalive), then the most idle. */
static int shed_first(const void *a, const void *b)
{
	const struct conn *x = a, *y = b;
	if (x->silent != y->silent)
		return x->silent ? -1 : 1;
	return x->idle_ms > y->idle_ms ? -1 : x->idle_ms < y->idle_ms;
}

/* By address, and within one the connections to keep first (shed_first reversed). */
static int by_addr_then_kept(const void *a, const void *b)
{
	const struct conn *x = a, *y = b;
	if (x->family != y->family)
		return x->family - y->family;
	int d = memcmp(x->addr, y->addr, sizeof x->addr);
	return d ? d : shed_first(b, a);
}

static int by_inode(const void *a, const void *b)
{
	const struct conn *x = a, *y = b;
	return x->inode < y->inode ? -1 : x->inode > y->inode;
}

/* Shuts down the descriptors of this process whose socket is one of v[0..n) (sorted by
 * inode), found by reading /proc/self/fd through dir (open since the start: no descriptor is
 * needed now); returns how many. */
static long shut_down(int dir, const struct conn *v, size_t n)
{
	if (dir < 0 || lseek(dir, 0, SEEK_SET) < 0)
		return 0;
	long done = 0;
	static _Thread_local char buf[16384];
	for (;;) {
		long len = syscall(SYS_getdents64, dir, buf, sizeof buf);
		if (len <= 0)
			break;
		for (long off = 0; off < len;) {
			struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
			off += e->d_reclen;
			char *end;
			long fd = strtol(e->d_name, &end, 10);
			if (*end || end == e->d_name || fd == dir)
				continue;
			char link[64], path[64];
			snprintf(path, sizeof path, "/proc/self/fd/%ld", fd);
			ssize_t k = readlink(path, link, sizeof link - 1);
			unsigned inode;
			if (k <= 0)
				continue;
			link[k] = '\0';
			if (sscanf(link, "socket:[%u]", &inode) != 1)
				continue;
			struct conn key = {.inode = inode};
			if (bsearch(&key, v, n, sizeof *v, by_inode) &&
			    shutdown((int)fd, SHUT_RDWR) == 0)
				done++;
		}
	}
	return done;
}

void tcp_guard_open(struct sip_engine *eng)
{
	eng->guard_nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	eng->guard_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (eng->guard_nl < 0 || eng->guard_dir < 0)
		log_msg(LOG_WARN, "sip_engine", "no caps on SIP over TCP connections: %s",
			strerror(errno));
}

void tcp_guard_close(struct sip_engine *eng)
{
	if (eng->guard_nl >= 0)
		close(eng->guard_nl);
	if (eng->guard_dir >= 0)
		close(eng->guard_dir);
	eng->guard_nl = eng->guard_dir = -1;
}

bool tcp_guard_sweep(struct sip_engine *eng)
{
	unsigned cap = eng->cfg.tcp_max_conns, cap_ip = eng->cfg.tcp_max_conns_per_ip;
	unsigned idle_ms = eng->cfg.tcp_idle_s * 1000u;
	struct conn *v = NULL;
	size_t n = 0, size = 0;
	if (eng->guard_nl < 0 || dump(eng->guard_nl, AF_INET, eng->cfg.port, &v, &n, &size) < 0 ||
	    dump(eng->guard_nl, AF_INET6, eng->cfg.port, &v, &n, &size) < 0 || n == 0) {
		free(v);
		return false;
	}
	/* unused too long (sofia's own idle timeout never closes a connection that has not
	 * carried a message yet) */
	size_t shed = 0, idle = 0;
	for (size_t i = 0; idle_ms && i < n; i++)
		if (v[i].idle_ms >= idle_ms) {
			v[i].shed = true;
			idle++;
		}
	shed = idle;
	/* each address keeps the cap_ip connections shed last */
	qsort(v, n, sizeof *v, by_addr_then_kept);
	for (size_t i = 0, run = 0; cap_ip && i < n; i++) {
		bool same = i && v[i].family == v[i - 1].family &&
			    !memcmp(v[i].addr, v[i - 1].addr, sizeof v[i].addr);
		run = same ? run + 1 : 0;
		if (run >= cap_ip && !v[i].shed) {
			v[i].shed = true;
			shed++;
		}
	}
	/* then in shed order among all, until the rest fits the total */
	if (cap && n - shed > cap) {
		qsort(v, n, sizeof *v, shed_first);
		for (size_t i = 0; i < n && n - shed > cap; i++)
			if (!v[i].shed) {
				v[i].shed = true;
				shed++;
			}
	}
	if (!shed) {
		free(v);
		return false;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].shed)
			v[k++] = v[i];
	qsort(v, k, sizeof *v, by_inode);
	long done = shut_down(eng->guard_dir, v, k);
	/* idle ones are routine; over a cap is a flood (or caps too low) */
	log_json(shed > idle ? LOG_WARN : LOG_INFO, "sip_tcp_shed",
		 json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "connections", (json_int_t)n, "shed",
			   (json_int_t)done, "idle", (json_int_t)idle, "max_connections",
			   (json_int_t)cap, "max_connections_per_ip", (json_int_t)cap_ip,
			   "idle_timeout_s", (json_int_t)eng->cfg.tcp_idle_s));
	free(v);
	return done > 0;
}
