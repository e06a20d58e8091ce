/*
 * stream.c - streaming replies (Server-Sent Events): parked when idle, woken from any thread.
 *
 * A stream is a 200 whose body MHD pulls from the owner's read callback whenever the socket
 * can take more. When read has nothing, the connection is suspended ("parked") rather than
 * polled: returning 0 without suspending would make MHD spin. http_stream_wake() resumes a
 * parked connection, or, when read is running at that moment, leaves a wake_pending mark
 * that stops the park, so data that arrives during a read is never left unsent.
 *
 * A parked connection is not polled, so MHD would notice a client that went away only when it
 * next writes (an event, or the owner's keepalive, seconds later). A read with nothing to send
 * therefore asks the socket whether the client hung up before parking, and ends the stream if
 * so: an owner that wakes its streams every second (the event hub's ticker) frees a closed one
 * within about a second, and a stream that is sending pays nothing for it. Parked, a stream is
 * also out of MHD's idle timeout (--http-idle-timeout), which is for connections that send
 * nothing; one whose client stops reading is not parked, and that timeout ends it.
 *
 * The server lists its open streams (srv->streams, under srv->mu) so that a stop can end them:
 * closing makes the next read end the stream, and a parked connection must be resumed first,
 * since MHD cannot stop with a connection suspended. A stream is freed by MHD with its
 * response (or with its request, if the client left before the response was queued); its
 * done callback runs then, once, and the owner must not wake it after that.
 */
#include "http_internal.h"
#include "core/list.h"

#include <poll.h>
#include <stdlib.h>

/* Whether the client closed its side (or the connection broke): a stream only writes, so
 * anything readable is an end. */
static bool client_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return false;
	struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

bool http_stream_client_gone(struct http_stream *s)
{
	return client_gone(s->conn);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *s = cls;
	(void)pos;
	pthread_mutex_lock(&s->mu);
	s->wake_pending = false;
	bool closing = s->closing;
	pthread_mutex_unlock(&s->mu);
	if (closing)
		return MHD_CONTENT_READER_END_OF_STREAM;
	long n = s->read(s->cls, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return (ssize_t)n; /* a write will tell MHD if the client is gone */
	if (client_gone(s->conn))
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* nothing to send: park the connection (returning 0 without suspending would spin) */
	pthread_mutex_lock(&s->mu);
	closing = s->closing; /* the server may have started stopping meanwhile */
	if (!s->wake_pending && !closing) {
		s->parked = true;
		MHD_suspend_connection(s->conn);
	}
	pthread_mutex_unlock(&s->mu);
	return closing ? MHD_CONTENT_READER_END_OF_STREAM : 0;
}

void http_stream_free(void *cls)
{
	struct http_stream *s = cls;
	struct http_server *srv = s->srv;
	pthread_mutex_lock(&srv->mu);
	LIST_UNLINK(srv->streams, s);
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	s->done(s->cls);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

struct MHD_Response *http_stream_response(struct http_stream *s)
{
	return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, s,
						 http_stream_free);
}

void http_stream_wake(struct http_stream *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->parked) {
		s->parked = false;
		MHD_resume_connection(s->conn);
	} else {
		s->wake_pending = true;
	}
	pthread_mutex_unlock(&s->mu);
}

struct http_stream *http_reply_stream(struct http_request *r, const char *content_type,
				      http_stream_read_fn read, void (*done)(void *cls), void *cls)
{
	struct http_stream *s = calloc(1, sizeof *s);
	if (!s) {
		done(cls);
		http_reply_fail(r, CP_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	s->srv = r->srv;
	s->conn = r->conn;
	s->read = read;
	s->done = done;
	s->cls = cls;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_lock(&r->srv->mu);
	LIST_PUSH(r->srv->streams, s);
	pthread_mutex_unlock(&r->srv->mu);
	r->stream = s;
	http_add_header(r, "Content-Type", content_type);
	http_add_header(r, "Cache-Control", "no-cache");
	http_reply_text(r, 200, NULL, 0);
	return s;
}

void http_streams_end(struct http_server *srv)
{
	/* a parked connection must be resumed before MHD can stop */
	for (struct http_stream *s = srv->streams; s; s = s->next) {
		pthread_mutex_lock(&s->mu);
		s->closing = true;
		if (s->parked) {
			s->parked = false;
			MHD_resume_connection(s->conn);
		}
		pthread_mutex_unlock(&s->mu);
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	while (srv->streams) {
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until))
			break;
	}
}
