/*
 * restart.c - hanging up, at start-up, the dialogs a previous run left up on the wire.
 *
 * A run that dies (kill -9, a crash, the machine) leaves its answered calls up at their far
 * ends and its ringing INVITEs ringing: nothing of nua's state survives it. What a BYE, or the
 * CANCEL of an INVITE, needs was kept for each such call by dialog.c (the store's dialogs
 * table, written through the call service's worker). Before the engine takes any call, this
 * file sends one request per kept dialog and waits, bounded, for the final answers:
 *
 *   BYE     RFC 3261 12.2.1.1 from the kept dialog state: Request-URI the remote target and
 *           Route the route set (a strict first route becomes the Request-URI, the target the
 *           last Route), From our tagged address, To theirs, Call-ID, the next CSeq.
 *   CANCEL  RFC 3261 9.1 from the kept INVITE: the same Request-URI, Call-ID, From, To and
 *           CSeq number, one Via with the INVITE's branch, sent where the INVITE went.
 *
 * Why nta and not nua: nua sends a BYE only in a dialog it holds itself (nua_bye() on a handle
 * without a session is refused), and it cannot CANCEL an INVITE another process sent (nua's
 * CANCEL needs its own client transaction, whose branch it chose). nta, nua's transaction layer,
 * sends any request as given: these are out-of-dialog requests to nta, carrying the dialog's
 * identifiers, and the far end matches them to its dialog (or INVITE transaction) as the
 * dead run's own would have been. This Debian sofia-sip gives no access to nua's nta agent,
 * so the engine creates an agent of its own on the SIP address, uses it here and destroys it
 * before nua listens there: the requests carry the same Via sent-by as the dead run's, which a
 * CANCEL must, and the answers come back to this agent. Requests that arrive meanwhile (a
 * few seconds at most, before the server reports ready) get 503.
 *
 * A CANCELled INVITE still gets its final answer from the far end, and the dead run's client
 * transaction is not there to ACK it: this agent does, as that transaction would have (RFC 3261
 * 17.1.1.3: same branch, the answer's To). If the far end answered 2xx before our CANCEL
 * reached it, the call is up after all: BYE it, and ACK the 2xx once the BYE is answered. In
 * that order because nothing kept names this dialog: a far end that got our ACK must already
 * be hung up, or a run killed between the two would leave it up with no one to end it. A far
 * end whose 2xx is never ACKed gives up by itself (RFC 3261 13.3.1.4).
 *
 * TLS: a dialog kept over TLS ("transport" TLS, the top Via of its INVITE or answer) is ended
 * over TLS. The agent binds the TLS listener as well (the files engine.c staged, the same
 * verification as nua's), and a BYE goes to its next hop (the first route, else the remote
 * target) with transport=tls, unless that URI names its transport itself: a far end whose
 * Contact leaves the parameter out is reached as the call reached it, not over UDP.
 *
 * Every left dialog is tried once; the caller (the call service) records what came back and
 * forgets the dialog. A run that dies during the wait leaves them kept, for the next start.
 */
struct restart;
#define NTA_AGENT_MAGIC_T struct restart
#define NTA_OUTGOING_MAGIC_T struct restart_req
#include "sip_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>

/* One left dialog being ended: its kept state, the request that ends it (the BYE, or the
 * CANCEL and, should the INVITE be answered meanwhile, a BYE after all) and what came back.
 * Transactions are destroyed when the wait is over: nta may answer inside
 * nta_outgoing_mcreate() already. */
struct restart_req {
	struct left_dialog *d;
	json_t *state; /* parsed; NULL: not usable */
	nta_outgoing_t *orq, *bye;
	bool final;        /* orq's final answer came */
	bool invite_final; /* CANCEL: the INVITE's final answer came (and was ACKed) */
	bool bye_final;
	struct late_ack *ack; /* the ACK of a 2xx, sent once its BYE is answered */
	nta_agent_t *agent;
};

/* The ACK a 2xx to a CANCELled INVITE gets after its BYE (the strings its request names;
 * dest empty: the URIs decide where it goes). */
struct late_ack {
	char uri[1024], route[4096], to[1024], dest[1100];
};

struct restart {
	nta_agent_t *agent;
	struct restart_req *reqs;
	size_t n;
};

/* The string member key of o, NULL if absent or not a string. */
static const char *member(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* "<uri>" or "name <uri>;params" -> the URI inside the brackets, into buf; false if none. */
static bool bracketed_uri(const char *addr, char *buf, size_t size)
{
	const char *lt = strchr(addr, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	if (!lt || !gt || (size_t)(gt - lt - 1) >= size)
		return false;
	memcpy(buf, lt + 1, (size_t)(gt - lt - 1));
	buf[gt - lt - 1] = '\0';
	return true;
}

/* The Request-URI and Route of a request in a dialog from its route set and remote target
 * (RFC 3261 12.2.1.1): with an empty route set or a loose first route the target is the
 * Request-URI and the route set the Route; a strict first route is the Request-URI instead,
 * the rest of the set and then the target the Route. false if the route set is malformed. */
static bool dialog_request_uri(json_t *route, const char *target, char *uri, size_t uri_size,
			       char *hdr, size_t hdr_size)
{
	size_t n = json_array_size(route), at = 0;
	bool strict = false;
	hdr[0] = '\0';
	snprintf(uri, uri_size, "%s", target);
	if (n) {
		const char *first = json_string_value(json_array_get(route, 0));
		char first_uri[1024];
		if (!first || !bracketed_uri(first, first_uri, sizeof first_uri))
			return false;
		strict = !strstr(first_uri, ";lr");
		if (strict)
			snprintf(uri, uri_size, "%s", first_uri);
	}
	for (size_t i = strict ? 1 : 0; i < n; i++) {
		const char *r = json_string_value(json_array_get(route, i));
		if (!r)
			return false;
		at += (size_t)snprintf(hdr + at, at < hdr_size ? hdr_size - at : 0, "%s%s",
				       at ? ", " : "", r);
	}
	if (strict)
		at += (size_t)snprintf(hdr + at, at < hdr_size ? hdr_size - at : 0, "%s<%s>",
				       at ? ", " : "", target);
	return at < hdr_size;
}

/* For a dialog kept over TLS (state's "transport"), where its requests go: the next hop (the
 * first of route, a JSON array of name-addrs, else uri) as sip:HOST[:PORT];transport=tls, into
 * buf. NULL (the URIs decide) for other dialogs, and when the hop names its transport itself
 * (sips:, a transport or maddr parameter) or cannot be read. */
static const char *tls_dest(json_t *state, json_t *route, const char *uri, char *buf, size_t size)
{
	const char *tp = member(state, "transport");
	const char *first = json_string_value(json_array_get(route, 0));
	char hop[1024];
	if (!tp || strcasecmp(tp, "TLS") || !uri)
		return NULL;
	if (first && !bracketed_uri(first, hop, sizeof hop))
		return NULL;
	su_home_t home[1] = {SU_HOME_INIT(home)};
	url_t *u = url_make(home, first ? hop : uri);
	bool ok = u && u->url_type == url_sip && u->url_host && !url_has_param(u, "transport") &&
		  !url_has_param(u, "maddr") &&
		  (size_t)snprintf(buf, size, "sip:%s%s%s;transport=tls", u->url_host,
				   u->url_port ? ":" : "", u->url_port ? u->url_port : "") < size;
	su_home_deinit(home);
	return ok ? buf : NULL;
}

/* What one request carries; NULL members are left out. */
struct request {
	const char *method, *uri, *call_id, *from, *to, *route, *branch, *dest;
	long long cseq;
	bool stateless; /* an ACK: nothing comes back */
};

static int on_response(struct restart_req *q, nta_outgoing_t *orq, sip_t const *sip);
static void send_late_ack(nta_agent_t *agent, struct restart_req *q);

/* Sends r through agent; its answers go to q. NULL if nta refused it (and for an ACK). */
static nta_outgoing_t *send_request(nta_agent_t *agent, struct restart_req *q,
				    const struct request *r)
{
	char line[1100], cseq[64];
	snprintf(line, sizeof line, "%s %s SIP/2.0", r->method, r->uri);
	snprintf(cseq, sizeof cseq, "%lld %s", r->cseq, r->method);
	nta_outgoing_t *orq = nta_outgoing_mcreate(
		agent, r->stateless ? NULL : on_response, r->stateless ? NULL : q,
		r->dest ? URL_STRING_MAKE(r->dest) : NULL, (msg_t *)-1, SIPTAG_REQUEST_STR(line),
		SIPTAG_CALL_ID_STR(r->call_id), SIPTAG_FROM_STR(r->from), SIPTAG_TO_STR(r->to),
		SIPTAG_CSEQ_STR(cseq), SIPTAG_MAX_FORWARDS_STR("70"),
		TAG_IF(r->route, SIPTAG_ROUTE_STR(r->route)),
		TAG_IF(strcmp(r->method, "ACK"),
		       SIPTAG_REASON_STR("Q.850;cause=16;text=\"node_restart\"")),
		TAG_IF(!strcmp(r->method, "BYE"),
		       SIPTAG_HEADER_STR("X-Callplane-End-Reason: node_restart")),
		SIPTAG_USER_AGENT_STR("callplane"), TAG_IF(r->branch, NTATAG_BRANCH_KEY(r->branch)),
		NTATAG_STATELESS(r->stateless), TAG_END());
	return r->stateless || orq == (nta_outgoing_t *)-1 ? NULL : orq;
}

/* A final answer to one of our requests: the far end's, if it came over the network (nta
 * makes its own, with no source address, when the far end is unreachable). */
static int on_response(struct restart_req *q, nta_outgoing_t *orq, sip_t const *sip)
{
	int status = nta_outgoing_status(orq);
	bool is_bye = orq == q->bye;
	if (status < 200 || (is_bye ? q->bye_final : q->final))
		return 0;
	msg_t *resp = nta_outgoing_getresponse(orq);
	su_addrinfo_t *ai = resp ? msg_addrinfo(resp) : NULL;
	bool heard = sip && ai && ai->ai_addrlen > 0;
	if (resp)
		msg_destroy(resp);
	if (heard)
		metrics_sip_response(false, is_bye ? "BYE" : nta_outgoing_method_name(orq), status);
	if (is_bye) {
		q->bye_final = true;
		q->d->status = heard ? status : 0;
		if (heard)
			send_late_ack(q->agent, q);
	} else {
		q->final = true;
		if (!q->bye)
			q->d->status = heard ? status : 0;
		/* a CANCEL the far end matches to no INVITE: none will be answered either */
		if (status == 481 && member(q->state, "branch"))
			q->invite_final = true;
	}
	log_json(heard && status < 300 ? LOG_INFO : LOG_WARN, "sip_restart_hangup_result",
		 json_pack("{s:s, s:s, s:i, s:b}", "call_id", q->d->call_id, "request",
			   is_bye ? "BYE" : nta_outgoing_method_name(orq), "status", status,
			   "from_far_end", heard));
	return 0;
}

/* A final answer (sip) to the INVITE that q CANCELs: ACK it as its transaction would have;
 * a 2xx means the far end answered first: the call is up, so BYE it, and ACK the 2xx once
 * the BYE is answered (send_late_ack). A 2xx retransmitted meanwhile changes nothing. */
static void invite_answered(nta_agent_t *agent, struct restart_req *q, sip_t const *sip)
{
	json_t *s = q->state;
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *to = sip_header_as_string(home, (sip_header_t const *)sip->sip_to);
	int status = sip->sip_status->st_status;
	struct request ack = {.method = "ACK",
			      .call_id = member(s, "call_id"),
			      .from = member(s, "local"),
			      .to = to,
			      .cseq = json_integer_value(json_object_get(s, "cseq")),
			      .stateless = true};
	q->invite_final = true;
	if (status >= 300) {
		/* RFC 3261 17.1.1.3: the INVITE's Request-URI, branch and destination */
		ack.uri = member(s, "uri");
		ack.branch = member(s, "branch");
		ack.dest = member(s, "dest");
		if (to)
			send_request(agent, q, &ack);
		su_home_deinit(home);
		return;
	}
	struct late_ack *a = q->ack ? NULL : calloc(1, sizeof *a);
	char *target = sip->sip_contact ? url_as_string(home, sip->sip_contact->m_url) : NULL;
	json_t *set = dialog_route_set(sip->sip_record_route, true);
	if (a && to && target && strlen(to) < sizeof a->to &&
	    dialog_request_uri(set, target, a->uri, sizeof a->uri, a->route, sizeof a->route)) {
		snprintf(a->to, sizeof a->to, "%s", to);
		q->ack = a;
		struct request bye = ack;
		bye.method = "BYE";
		bye.uri = a->uri;
		bye.route = a->route[0] ? a->route : NULL;
		bye.dest = tls_dest(s, set, a->uri, a->dest, sizeof a->dest);
		bye.cseq = ack.cseq + 1;
		bye.stateless = false;
		q->d->request = "BYE";
		q->d->status = 0;
		q->bye = send_request(agent, q, &bye);
		log_json(LOG_WARN, "sip_restart_hangup",
			 json_pack("{s:s, s:s, s:s}", "call_id", q->d->call_id, "request", "BYE",
				   "why", "the INVITE was answered before its CANCEL"));
	} else {
		free(a);
	}
	json_decref(set);
	su_home_deinit(home);
}

/* The BYE of a 2xx to a CANCELled INVITE is answered: now the 2xx gets its ACK. */
static void send_late_ack(nta_agent_t *agent, struct restart_req *q)
{
	json_t *s = q->state;
	if (!q->ack)
		return;
	struct request ack = {.method = "ACK",
			      .uri = q->ack->uri,
			      .route = q->ack->route[0] ? q->ack->route : NULL,
			      .call_id = member(s, "call_id"),
			      .from = member(s, "local"),
			      .to = q->ack->to,
			      .dest = q->ack->dest[0] ? q->ack->dest : NULL,
			      .cseq = json_integer_value(json_object_get(s, "cseq")),
			      .stateless = true};
	send_request(agent, q, &ack);
}

/* A message no transaction of ours expects. A final answer to an INVITE we CANCEL is ACKed
 * (and a 2xx BYEd); other answers are dropped; requests get 503: the engine takes no calls
 * yet. */
static int on_message(struct restart *r, nta_agent_t *agent, msg_t *msg, sip_t *sip)
{
	if (sip && sip->sip_request) {
		if (sip->sip_request->rq_method != sip_method_ack) {
			metrics_sip_response(true, sip->sip_request->rq_method_name, 503);
			return nta_msg_treply(agent, msg, SIP_503_SERVICE_UNAVAILABLE,
					      SIPTAG_RETRY_AFTER_STR("5"), TAG_END()),
			       0;
		}
		nta_msg_discard(agent, msg);
		return 0;
	}
	if (sip && sip->sip_status && sip->sip_status->st_status >= 200 && sip->sip_cseq &&
	    sip->sip_cseq->cs_method == sip_method_invite && sip->sip_via &&
	    sip->sip_via->v_branch && sip->sip_to) {
		for (size_t i = 0; i < r->n; i++) {
			struct restart_req *q = &r->reqs[i];
			const char *branch = member(q->state, "branch");
			if (!q->orq || !branch || strcasecmp(branch, sip->sip_via->v_branch))
				continue;
			if (!q->invite_final)
				invite_answered(agent, q, sip);
			else if (q->bye_final)
				send_late_ack(agent, q); /* our ACK was lost: the 2xx came again */
			break;
		}
	}
	nta_msg_discard(agent, msg);
	return 0;
}

/* Sends the request q's dialog state describes (q->orq, q->d->request); nothing (logged) if
 * the state is not one this engine wrote or nta refused the request. */
static void send_one(nta_agent_t *agent, struct restart_req *q)
{
	struct left_dialog *d = q->d;
	json_t *s = q->state = json_loads(d->state, 0, NULL);
	const char *req = member(s, "request");
	char uri[1024], route[4096] = "", dest[1100];
	struct request r = {.call_id = member(s, "call_id"),
			    .from = member(s, "local"),
			    .to = member(s, "remote"),
			    .cseq = json_integer_value(json_object_get(s, "cseq"))};
	if (!req || !r.call_id || !r.from || !r.to || r.cseq <= 0 || r.cseq > 0x7fffffff) {
		r.method = NULL;
	} else if (!strcmp(req, "BYE")) {
		const char *target = member(s, "target");
		r.method = "BYE";
		if (!target || !dialog_request_uri(json_object_get(s, "route"), target, uri,
						   sizeof uri, route, sizeof route))
			r.method = NULL;
		r.uri = uri;
		r.route = route[0] ? route : NULL;
		if (r.method)
			r.dest = tls_dest(s, json_object_get(s, "route"), uri, dest, sizeof dest);
	} else if (!strcmp(req, "CANCEL")) {
		r.method = "CANCEL";
		r.uri = member(s, "uri");
		r.branch = member(s, "branch");
		r.dest = member(s, "dest");
		if (!r.uri || !r.branch || !r.dest)
			r.method = NULL;
	}
	if (r.method) {
		d->request = r.method;
		q->orq = send_request(agent, q, &r);
		if (!q->orq)
			d->request = NULL;
	}
	if (!q->orq)
		log_json(LOG_ERROR, "sip_restart_hangup_failed",
			 json_pack("{s:s, s:s}", "call_id", d->call_id, "reason",
				   r.method ? "the request could not be sent"
					    : "the kept dialog state is not usable"));
	else
		log_json(LOG_INFO, "sip_restart_hangup",
			 json_pack("{s:s, s:s, s:s}", "call_id", d->call_id, "request", r.method,
				   "sip_call_id", r.call_id));
}

/* Is q's dialog over: its request answered, and for a CANCEL the INVITE's answer ACKed (and
 * the BYE that a 2xx called for answered)? */
static bool done(const struct restart_req *q)
{
	if (!q->orq)
		return true;
	if (!q->final)
		return false;
	if (!member(q->state, "branch"))
		return true;
	return q->invite_final && (!q->bye || q->bye_final);
}

int restart_hangup(struct sip_engine *eng, const char *url, const char *sips_url,
		   const char *tls_dir, struct left_dialog *left, size_t n, int wait_ms)
{
	if (!n)
		return 0;
	struct restart r = {.reqs = calloc(n, sizeof *r.reqs), .n = n};
	if (!r.reqs)
		return -1;
	r.agent = nta_agent_create(eng->root, URL_STRING_MAKE(url), on_message, &r,
				   NTATAG_CLIENT_RPORT(1), TPTAG_UDP_RMEM(eng->cfg.udp_buffer),
				   TPTAG_UDP_WMEM(eng->cfg.udp_buffer), TPTAG_SDWN_ERROR(1),
				   TAG_END());
	if (!r.agent) {
		log_msg(LOG_ERROR, "sip_engine",
			"cannot listen on %s to hang up %zu dialogs left"
			" by a previous run",
			url, n);
		free(r.reqs);
		return -1;
	}
	/* the dialogs kept over TLS go over TLS; without it they fail (logged), the rest go */
	if (sips_url[0] &&
	    nta_agent_add_tport(r.agent, URL_STRING_MAKE(sips_url), TPTAG_CERTIFICATE(tls_dir),
				TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_SUBJECTS_OUT),
				TPTAG_TLS_VERIFY_DEPTH(9), TAG_END()) < 0)
		log_msg(LOG_ERROR, "sip_engine",
			"cannot listen on %s to hang up the dialogs a"
			" previous run left over TLS",
			sips_url);
	for (size_t i = 0; i < n; i++) {
		r.reqs[i].d = &left[i];
		r.reqs[i].agent = r.agent;
		send_one(r.agent, &r.reqs[i]);
	}
	int64_t deadline = cp_mono_us() + (int64_t)wait_ms * 1000;
	size_t unfinished;
	for (;;) {
		unfinished = 0;
		for (size_t i = 0; i < n; i++)
			unfinished += !done(&r.reqs[i]);
		int64_t now = cp_mono_us();
		if (!unfinished || now >= deadline)
			break;
		su_root_step(eng->root, (su_duration_t)((deadline - now + 999) / 1000));
	}
	for (size_t i = 0; i < n; i++) {
		struct restart_req *q = &r.reqs[i];
		if (!done(q))
			log_json(LOG_WARN, "sip_restart_hangup_unanswered",
				 json_pack("{s:s, s:s}", "call_id", q->d->call_id, "waiting_for",
					   !q->final ? "the answer to our request"
					   : !q->invite_final
						   ? "the INVITE's final answer"
						   : "the answer to the BYE of its 2xx"));
	}
	for (size_t i = 0; i < n; i++) {
		nta_outgoing_destroy(r.reqs[i].orq);
		nta_outgoing_destroy(r.reqs[i].bye);
		json_decref(r.reqs[i].state);
		free(r.reqs[i].ack);
	}
	free(r.reqs);
	nta_agent_destroy(r.agent);
	log_json(unfinished ? LOG_WARN : LOG_INFO, "sip_restart_hangups",
		 json_pack("{s:I, s:I, s:i}", "dialogs", (json_int_t)n, "unfinished",
			   (json_int_t)unfinished, "wait_ms", wait_ms));
	return 0;
}
