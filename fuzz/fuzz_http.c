/*
 * fuzz_http.c - libFuzzer target: any bytes as what a client writes to the HTTP API's socket.
 *
 * The real server runs in this process as `serve --sip none` would run it: the SQLite store (in
 * /dev/shm/fuzz_http.PID, removed at exit, or by a later run if this one is interrupted), the
 * call service with its worker, the live-event hub, and the HTTP server with the route tables
 * serve serves (serve_route_tables), on a loopback port. In place of the SIP engine sits a
 * small telephony double, so that ends go through the engine's asynchronous answer and the
 * connection's suspend and resume, as they do in production: hangup() is answered from its
 * own thread (CP_OK with a BYE or CANCEL; CP_ERR_UNDELIVERABLE when the reason has
 * "undeliverable"; CP_ERR_NOT_ACTIVE when it has "gone"), and a dialled call whose "to" has
 * "answer" rings and is answered. Webhooks are registered and their deliveries queued, but no
 * worker sends them: a fuzzer must not reach out to hosts of its inputs' choosing.
 *
 * The world is fixed, so inputs can name it: tenant TENANT with agents AGENT (number NUMBER) and
 * AGENT_NONUM, tenant TENANT2 with AGENT2 (dial policies: add_tenant()); API keys with fixed secrets (cp_...01 tenant-wide,
 * cp_...02 scoped to NUMBER with a limit of 5 requests/s, cp_...03 of TENANT2, cp_...04
 * revoked; their ids end in c1..c4). Calls and webhooks change as inputs act on them, so an
 * input names them by marker, replaced before it is sent: {{Q}} a queued call, {{A}} an
 * answered one, {{E}} an ended one, {{W}} a webhook, each of TENANT and AGENT (a new one is
 * made whenever the last one has moved on), and {{T}} the access token of a new web call of
 * AGENT (43 bytes; made at each use: a token joins once). The double's web calls wait for
 * their browser for ever, and a browser's upgraded socket is given back at once.
 *
 * The server has one MHD worker thread: inputs come one connection at a time, and a second
 * worker only woke with the first at each connection (both wait on the listening socket),
 * which cost a fifth of the inputs a second.
 *
 * One input is written to a new connection; the first response is read (up to 100 ms when the
 * input looks like a whole request, 3 ms when it does not), the connection closed, and the
 * next input waits until every request dispatched has been answered. What must hold:
 * nothing out of bounds or leaked (ASan, UBSan, LSan); every response that says JSON is JSON;
 * every request dispatched is answered within 8 s (a handler that never replies would hold
 * the connection for ever); and every 256 inputs GET /healthz still answers 200 (the server
 * is not wedged). The server's log goes to /dev/null (libFuzzer's -close_fd_mask=2, added to
 * the command line here; sanitizer reports still reach the terminal).
 *
 * Leaks are found by LeakSanitizer when the run exits, over every input of the run, not after
 * each input (libFuzzer's -detect_leaks=0, added here too). libFuzzer checks an input for
 * leaks whenever its mallocs and frees differ in number, which in a server whose threads
 * allocate on their own is nearly every input, and each check scans the whole heap: it took
 * 60% of the time and held the target at ~300 inputs a second.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "auth/auth.h"
#include "call/call_service.h"
#include "call/telephony.h"
#include "cli/serve.h"
#include "core/log.h"
#include "core/util.h"
#include "http/event_hub.h"
#include "http/http_internal.h"
#include "http/routes.h"
#include "store/store.h"
#include "webhook/webhook_registry.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TENANT "11111111-1111-4111-8111-111111111111"
#define TENANT2 "22222222-2222-4222-8222-222222222222"
#define AGENT "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa1"
#define AGENT_NONUM "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa2"
#define AGENT2 "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbb1"
#define NUMBER "+15550001111"
#define NUMBER2 "+15550009999"
#define SECRET(n) AUTH_SECRET_PREFIX "0000000000000000000000000000000000000000000000" n
#define KEY_ID(n) "cccccccc-cccc-4ccc-8ccc-ccccccccccc" n

#define READ_MAX (256 * 1024)

static struct store *st;
static struct call_service *svc;
static struct app app;
static struct http_server *srv;
static int port;
static char dir[64];

/* Says what does not hold where the sanitizers report (stderr is /dev/null), and aborts. */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	__sanitizer_report_error_summary(msg);
	abort();
}

/* ---- the telephony double --------------------------------------------------------------- */

struct hangup_job {
	struct hangup_job *next;
	hangup_done_fn done;
	void *arg;
	enum cp_err err;
	enum hangup_kind kind;
};

static pthread_mutex_t eng_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t eng_cv = PTHREAD_COND_INITIALIZER;
static struct hangup_job *eng_jobs;
static atomic_uint eng_seq;

/* The engine's thread: answers each hang-up, in order, as the engine would later. */
static void *engine_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&eng_mu);
	for (;;) {
		while (!eng_jobs)
			pthread_cond_wait(&eng_cv, &eng_mu);
		struct hangup_job *j = eng_jobs;
		eng_jobs = j->next;
		pthread_mutex_unlock(&eng_mu);
		j->done(j->arg, j->err, j->kind, 0);
		free(j);
		pthread_mutex_lock(&eng_mu);
	}
	return NULL;
}

static void fake_new_call_id(void *engine, char *buf, size_t size)
{
	(void)engine;
	snprintf(buf, size, "fuzz-%u@callplane.invalid", atomic_fetch_add(&eng_seq, 1));
}

static int fake_dial(void *engine, const struct call *c)
{
	(void)engine;
	if (!strstr(c->to, "answer"))
		return 0; /* rings for ever, until ended */
	struct call_update ring = {.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_RINGING};
	struct call_update up = {.from_mask = CALL_BIT(CALL_RINGING),
				 .to = CALL_IN_PROGRESS,
				 .answered_at = cp_now_ms(),
				 .sip_status = 200};
	call_service_post_event(svc, c->id, &ring);
	call_service_post_event(svc, c->id, &up);
	return 0;
}

static void fake_hangup(void *engine, const struct call *c, const char *reason, int wait_ms,
			const struct hangup_goodbye *goodbye, hangup_done_fn done, void *arg)
{
	(void)engine;
	(void)wait_ms;
	(void)goodbye; /* no media: ends at once, as the engine does */
	struct hangup_job *j = calloc(1, sizeof *j);
	if (!j) {
		done(arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE, 0);
		return;
	}
	j->done = done;
	j->arg = arg;
	j->kind = c->status == CALL_IN_PROGRESS ? HANGUP_BYE : HANGUP_CANCEL;
	j->err = strstr(reason, "undeliverable") ? CP_ERR_UNDELIVERABLE
		 : strstr(reason, "gone")        ? CP_ERR_NOT_ACTIVE
						 : CP_OK;
	pthread_mutex_lock(&eng_mu);
	struct hangup_job **tail = &eng_jobs;
	while (*tail)
		tail = &(*tail)->next;
	*tail = j;
	pthread_cond_signal(&eng_cv);
	pthread_mutex_unlock(&eng_mu);
}

static int fake_send_dtmf(void *engine, const struct call *c, const char *digits)
{
	(void)engine;
	(void)digits;
	return c->status == CALL_IN_PROGRESS ? 0 : -1;
}

static int fake_web_open(void *engine, const struct call *c, int join_ms)
{
	(void)engine;
	(void)c;
	(void)join_ms;
	return 0; /* waits for its browser, until ended */
}

static void fake_web_join(void *engine, const char *call_id, const struct web_socket *ws)
{
	(void)engine;
	(void)call_id;
	ws->release(ws->ctx); /* no media plane: the browser sees it close */
}

static const struct telephony_ops fake_ops = {
	.new_call_id = fake_new_call_id,
	.dial = fake_dial,
	.hangup = fake_hangup,
	.send_dtmf = fake_send_dtmf,
	.web_open = fake_web_open,
	.web_join = fake_web_join,
};

/* ---- the world -------------------------------------------------------------------------- */

static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http: %s failed\n", what);
		exit(1);
	}
}

static void add_agent(const char *id, const char *tenant, const char *number)
{
	struct agent a = {.created_at = cp_now_ms()};
	snprintf(a.id, sizeof a.id, "%s", id);
	snprintf(a.tenant_id, sizeof a.tenant_id, "%s", tenant);
	snprintf(a.name, sizeof a.name, "agent %s", number);
	snprintf(a.number, sizeof a.number, "%s", number);
	snprintf(a.stream_url, sizeof a.stream_url, "ws://127.0.0.1:9/agent");
	must(STORE(st, agent_create, &a) == STORE_OK, "agent_create");
}

static void add_key(const char *id, const char *secret, const char *tenant, const char *number,
		    unsigned rate_limit, bool revoked)
{
	struct api_key k = {.created_at = cp_now_ms(), .rate_limit = rate_limit};
	snprintf(k.id, sizeof k.id, "%s", id);
	snprintf(k.tenant_id, sizeof k.tenant_id, "%s", tenant);
	snprintf(k.number, sizeof k.number, "%s", number);
	cp_sha256_hex(secret, strlen(secret), k.hash);
	snprintf(k.prefix, sizeof k.prefix, "%.10s", secret);
	must(STORE(st, key_create, &k) == STORE_OK, "key_create");
	if (revoked)
		must(STORE(st, key_revoke, id, cp_now_ms()) == STORE_OK, "key_revoke");
}

/* Both refuse numbers starting +1900; TENANT dials any sip: URI, TENANT2 only those to
 * pbx.example. */
static void add_tenant(const char *id, const char *name, const char *sip_uris)
{
	struct tenant t = {.created_at = cp_now_ms(), .dial = {.deny_prefixes = "+1900"}};
	snprintf(t.id, sizeof t.id, "%s", id);
	snprintf(t.name, sizeof t.name, "%s", name);
	snprintf(t.dial.sip_uris, sizeof t.dial.sip_uris, "%s", sip_uris);
	must(STORE(st, tenant_create, &t) == STORE_OK, "tenant_create");
}

static void make_world(void)
{
	add_tenant(TENANT, "fuzz", "any");
	add_tenant(TENANT2, "fuzz 2", "pbx.example");
	add_agent(AGENT, TENANT, NUMBER);
	add_agent(AGENT_NONUM, TENANT, "");
	add_agent(AGENT2, TENANT2, NUMBER2);
	add_key(KEY_ID("1"), SECRET("01"), TENANT, "", 0, false);
	add_key(KEY_ID("2"), SECRET("02"), TENANT, NUMBER, 5, false);
	add_key(KEY_ID("3"), SECRET("03"), TENANT2, "", 0, false);
	add_key(KEY_ID("4"), SECRET("04"), TENANT, "", 0, true);
}

/* A call, a webhook: what a marker of the input stands for, made anew once it has moved on. */
struct marker {
	const char *text;
	enum call_status status; /* for calls */
	bool webhook;
	char id[CP_UUID_LEN + 1];
	bool token; /* {{T}}: id is unused, a web call's token is written */
};

static struct marker markers[] = {
	{"{{Q}}", CALL_QUEUED, false, "", false},
	{"{{A}}", CALL_IN_PROGRESS, false, "", false},
	{"{{E}}", CALL_COMPLETED, false, "", false},
	{"{{W}}", 0, true, "", false},
	{"{{T}}", 0, false, "", true},
};

/* A new web call's access token into out. */
static void new_token(char out[WEB_TOKEN_LEN + 1])
{
	struct scope sc = {0};
	snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", TENANT);
	struct web_call_request req = {.agent_id = AGENT};
	struct web_call_access access = {0};
	struct call c = {0};
	struct cp_error err = {0};
	must(call_web_create(svc, &sc, &req, NULL, &c, &access, &err) == CP_OK, "call_web_create");
	call_clear(&c);
	memcpy(out, access.token, sizeof access.token);
}

static bool call_still(const struct marker *m)
{
	struct call c = {0};
	bool ok = m->id[0] && STORE(st, call_get, NULL, m->id, &c) == STORE_OK &&
		  c.status == m->status && !call_is_redacted(&c);
	call_clear(&c);
	return ok;
}

static void new_call(struct marker *m)
{
	struct call c = {.direction = CALL_OUTBOUND,
			 .status = m->status,
			 .created_at = cp_now_ms(),
			 .max_duration_s = 0};
	must(cp_uuid4(c.id) == 0, "cp_uuid4");
	snprintf(c.tenant_id, sizeof c.tenant_id, "%s", TENANT);
	snprintf(c.agent_id, sizeof c.agent_id, "%s", AGENT);
	snprintf(c.from, sizeof c.from, "%s", NUMBER);
	snprintf(c.to, sizeof c.to, "sip:far@example.com");
	fake_new_call_id(NULL, c.provider_call_id, sizeof c.provider_call_id);
	if (m->status != CALL_QUEUED)
		c.answered_at = c.created_at;
	if (m->status == CALL_COMPLETED) {
		c.ended_at = c.created_at + 1000;
		snprintf(c.end_reason, sizeof c.end_reason, "remote_hangup");
	}
	c.metadata = strdup("{\"fuzz\":true}");
	must(c.metadata && STORE(st, call_insert, &c) == STORE_OK, "call_insert");
	snprintf(m->id, sizeof m->id, "%s", c.id);
	call_clear(&c);
}

static bool webhook_still(const struct marker *m)
{
	struct webhook *w = NULL;
	size_t n = 0;
	bool found = false;
	if (m->id[0] && STORE(st, webhook_list, TENANT, &w, &n) == STORE_OK)
		for (size_t i = 0; i < n && !found; i++)
			found = !strcmp(w[i].id, m->id);
	free(w);
	return found;
}

static void new_webhook(struct marker *m)
{
	struct webhook w = {.created_at = cp_now_ms()};
	must(cp_uuid4(w.id) == 0, "cp_uuid4");
	snprintf(w.tenant_id, sizeof w.tenant_id, "%s", TENANT);
	snprintf(w.url, sizeof w.url, "http://127.0.0.1:9/hook");
	snprintf(w.secret, sizeof w.secret, "fuzz-secret");
	snprintf(w.format, sizeof w.format, "canonical");
	must(STORE(st, webhook_create, &w, WEBHOOKS_PER_TENANT_DEFAULT) == STORE_OK,
	     "webhook_create");
	snprintf(m->id, sizeof m->id, "%s", w.id);
}

/* The input with its markers replaced (malloc'd, *len set). */
static char *expand(const uint8_t *data, size_t size, size_t *len)
{
	/* a marker is 5 bytes; what replaces it at most WEB_TOKEN_LEN */
	char *out = malloc(size * (WEB_TOKEN_LEN / 5 + 1) + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < size;) {
		struct marker *m = NULL;
		for (size_t k = 0; k < sizeof markers / sizeof markers[0] && !m; k++) {
			size_t ml = strlen(markers[k].text);
			if (size - i >= ml && !memcmp(data + i, markers[k].text, ml))
				m = &markers[k];
		}
		if (!m) {
			out[o++] = (char)data[i++];
			continue;
		}
		if (m->token) {
			new_token(out + o);
			o += WEB_TOKEN_LEN;
			i += strlen(m->text);
			continue;
		}
		if (m->webhook ? !webhook_still(m) : !call_still(m))
			m->webhook ? new_webhook(m) : new_call(m);
		memcpy(out + o, m->id, CP_UUID_LEN);
		o += CP_UUID_LEN;
		i += strlen(m->text);
	}
	*len = o;
	return out;
}

/* ---- the client ------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	return cp_mono_us() / 1000;
}

static int connect_server(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Case-insensitive search for a header line "name:" in [p, end); its value or NULL. */
static const char *header_value(const char *p, const char *end, const char *name)
{
	size_t nl = strlen(name);
	for (const char *line = p; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			return v;
		}
		line = eol + 1;
	}
	return NULL;
}

/* Where the headers of [p, p+len) end (just past the blank line), or NULL. */
static const char *headers_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n')
			return p + i + 2;
		if (i + 3 < len && !memcmp(p + i, "\r\n\r\n", 4))
			return p + i + 4;
	}
	return NULL;
}

/* Whether the chunks from p on (before end) end with the last chunk (size 0). */
static bool chunks_whole(const char *p, const char *end)
{
	while (p < end) {
		char *after;
		errno = 0;
		unsigned long long n = strtoull(p, &after, 16);
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (after == p || errno || !eol)
			return false;
		if (n == 0)
			return memmem(eol, (size_t)(end - eol), "\r\n\r\n", 4) != NULL;
		if (n > (unsigned long long)(end - eol))
			return false;
		p = eol + 2 + n + 2;
	}
	return false;
}

/* Whether the input holds at least one whole request, as far as a quick look can tell: the
 * headers end, and the body announced (by length or in chunks) is there. Only the time waited
 * for a reply follows from it. */
static bool looks_whole(const char *req, size_t len)
{
	const char *he = headers_end(req, len);
	if (!he)
		return false;
	const char *te = header_value(req, he, "Transfer-Encoding");
	if (te)
		return !strncasecmp(te, "chunked\r", 8) && chunks_whole(he, req + len);
	const char *cl = header_value(req, he, "Content-Length");
	return !cl || strtoull(cl, NULL, 10) <= len - (size_t)(he - req);
}

/* Whether resp (len bytes so far) is a whole response: headers (after any 1xx ones), then
 * Content-Length bytes (none for HEAD, 204 and 304; a chunked stream counts once its headers
 * are in). Checks what it can of a whole one. */
static bool response_whole(const char *resp, size_t len, bool head)
{
	for (;;) {
		const char *he = headers_end(resp, len);
		if (!he)
			return false;
		if (len < 12 || memcmp(resp, "HTTP/1.", 7))
			fail("fuzz_http: not an HTTP response: %.*s", (int)(len < 200 ? len : 200),
			     resp);
		int status = atoi(resp + 9);
		if (status < 100 || status > 599)
			fail("fuzz_http: status %d", status);
		if (status < 200) { /* interim: the final one follows */
			len -= (size_t)(he - resp);
			resp = he;
			continue;
		}
		if (head || status == 204 || status == 304)
			return true;
		size_t body = len - (size_t)(he - resp);
		const char *te = header_value(resp, he, "Transfer-Encoding");
		if (te && !strncasecmp(te, "chunked", 7))
			return true;
		const char *cl = header_value(resp, he, "Content-Length");
		if (!cl)
			return false; /* ends with the connection */
		size_t want = strtoull(cl, NULL, 10);
		if (body < want)
			return false;
		const char *ct = header_value(resp, he, "Content-Type");
		if (want && ct && !strncasecmp(ct, "application/json", 16)) {
			json_error_t je;
			json_t *j = json_loadb(he, want, JSON_DECODE_ANY, &je);
			if (!j)
				fail("fuzz_http: a JSON response that is not JSON (%s): %.*s",
				     je.text, (int)(len < 1500 ? len : 1500), resp);
			json_decref(j);
		}
		return true;
	}
}

/* Writes req to a new connection and reads the first response, each within the time it is
 * given; returns the response's length (0 if none came whole). */
static size_t exchange(const char *req, size_t len, int64_t wait_ms, char *resp)
{
	int fd = connect_server();
	if (fd < 0)
		return 0;
	int64_t deadline = now_ms() + wait_ms;
	bool head = len >= 5 && !memcmp(req, "HEAD ", 5);
	size_t sent = 0, got = 0;
	bool whole = false;
	while (!whole && now_ms() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
		if (poll(&p, 1, 1) < 0 && errno != EINTR)
			break;
		if (p.revents & POLLOUT) {
			ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				sent = len; /* the server is not reading any more */
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, resp + got, READ_MAX - got, MSG_DONTWAIT);
			if (n <= 0 && !(n < 0 && errno == EAGAIN))
				break; /* closed */
			if (n > 0) {
				got += (size_t)n;
				whole = response_whole(resp, got, head) || got == READ_MAX;
			}
		}
	}
	close(fd);
	return whole ? got : 0;
}

/* Waits until every request dispatched has been answered; aborts after 8 s (generous: a
 * loaded machine must not make a false finding, and a handler that never replies still is). */
static void drain(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 8;
	pthread_mutex_lock(&srv->mu);
	while (srv->in_flight > 0)
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until))
			fail("fuzz_http: %d requests dispatched and not answered within 8 s",
			     srv->in_flight);
	pthread_mutex_unlock(&srv->mu);
}

static void alive(void)
{
	static const char hc[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n";
	static char resp[READ_MAX];
	size_t n = exchange(hc, sizeof hc - 1, 8000, resp);
	if (n < 12 || memcmp(resp + 9, "200", 3))
		fail("fuzz_http: GET /healthz got no 200 within 8 s");
}

/* ---- libFuzzer -------------------------------------------------------------------------- */

/* Removes the database directory d and what SQLite keeps in it. */
static void remove_db_dir(const char *d)
{
	static const char *const files[] = {"db", "db-wal", "db-shm", "db-keys", "db-journal"};
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", d, files[i]);
		unlink(path);
	}
	rmdir(d);
}

static void remove_dir(void)
{
	remove_db_dir(dir);
}

/* A run that was interrupted (libFuzzer then exits without atexit) leaves its directory:
 * removes those whose process is gone. */
static void remove_stale_dirs(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int pid;
		char tail;
		if (sscanf(e->d_name, "fuzz_http.%d%c", &pid, &tail) != 1 || pid <= 0 ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
		remove_db_dir(path);
	}
	if (d)
		closedir(d);
}

static void on_event(void *arg)
{
	event_hub_wake(((struct app *)arg)->events);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* the server's log lines to /dev/null, libFuzzer's and the sanitizers' to stderr */
	static char *args[64];
	int n = 0;
	for (int i = 0; i < *argc && n < 61; i++)
		args[n++] = (*argv)[i];
	args[n++] = "-close_fd_mask=2";
	args[n++] = "-detect_leaks=0";
	args[n] = NULL;
	*argc = n;
	*argv = args;

	log_set_level(LOG_DEBUG); /* every log line's formatting is fuzzed too */
	signal(SIGPIPE, SIG_IGN);
	remove_stale_dirs();
	snprintf(dir, sizeof dir, "/dev/shm/fuzz_http.%d", (int)getpid());
	must(mkdir(dir, 0700) == 0, "mkdir");
	atexit(remove_dir);
	char db[128];
	snprintf(db, sizeof db, "%s/db", dir);
	struct store_options so = {.sync_full = false, .server = true};
	st = store_open(db, &so);
	must(st != NULL, "store_open");
	make_world();

	svc = call_service_create(st);
	must(svc != NULL, "call_service_create");
	app.calls = svc;
	app.webhooks_per_tenant = WEBHOOKS_PER_TENANT_DEFAULT;
	/* without it every host name an input invents would be a DNS query, hundreds a second;
	 * the target check itself is a pure function with a unit test */
	app.webhook_allow_private = true;
	app.store = st;
	app.events = event_hub_create(st, 10);
	must(app.events != NULL, "event_hub_create");
	call_service_on_event(svc, on_event, &app);
	must(call_service_start(svc) == 0, "call_service_start");
	pthread_t eng;
	must(pthread_create(&eng, NULL, engine_main, NULL) == 0, "pthread_create");
	struct telephony tel = {.ops = &fake_ops, .engine = NULL};
	call_service_set_telephony(svc, &tel);

	struct http_server_config hc = {.host = "127.0.0.1",
					.port = 0,
					.threads = 1,
					.app = &app,
					.store = st,
					.fallback = &canonical_dialect,
					.rate_limit = 0};
	srv = http_server_start(&hc, serve_route_tables, serve_n_route_tables);
	must(srv != NULL, "http_server_start");
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	must(di && di->port, "MHD_DAEMON_INFO_BIND_PORT");
	port = di->port;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char resp[READ_MAX];
	static unsigned runs;
	size_t len;
	char *req = expand(data, size, &len);
	if (!req)
		return 0;
	exchange(req, len, looks_whole(req, len) ? 100 : 3, resp);
	free(req);
	drain();
	if (++runs % 256 == 0)
		alive();
	return 0;
}
