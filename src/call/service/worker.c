/*
 * worker.c - the call service's FIFO of jobs and the worker thread (cp-worker) that drains
 * it: everything queued when it wakes becomes one group commit (one transaction, one fsync),
 * then every job of it is finished, in order. See service_internal.h for the two phases.
 *
 * The worker knows no kind of job: each runs through its job_ops. Without a worker (unit
 * tests, before start) a job runs on the thread that posts it.
 */
#include "service_internal.h"
#include "core/log.h"

/* Phase 1 of j through w. */
static void job_apply(struct writer *w, struct job *j)
{
	j->ended.set = false; /* an earlier try of a batch that did not commit counts nothing */
	w->job = j;
	j->ops->apply(w, j);
}

/* Phase 2 of j: the end it recorded is counted, then its own finish (which frees it). */
static void job_finish(struct job *j)
{
	if (j->ended.set)
		metrics_call_ended(call_status_name(j->ended.status), j->ended.reason,
				   j->ended.dialect);
	j->ops->finish(j);
}

static void run_job(struct call_service *svc, struct job *j)
{
	struct writer w = svc_writer(svc);
	job_apply(&w, j);
	job_finish(j);
}

/* Applies a list of jobs as one group commit: one transaction, one fsync, then the replies. */
static void run_batch(struct call_service *svc, struct job *list)
{
	struct store batch;
	struct writer w = svc_writer(svc);
	if (store_batch_begin(svc->st, &batch) == STORE_OK) {
		w.st = &batch;
		w.batched = true;
	}
	for (struct job *j = list; j; j = j->next)
		job_apply(&w, j);
	if (w.batched && store_batch_end(&batch, true) != STORE_OK) {
		/* nothing of the batch is durable: apply each job again on its own, so one bad
		 * write costs only its own job and no event is silently lost */
		log_msg(LOG_ERROR, "group_commit_failed", "re-applying the batch one by one");
		w = svc_writer(svc);
		for (struct job *j = list; j; j = j->next)
			job_apply(&w, j);
	}
	if (w.event_pending && svc->on_event)
		svc->on_event(svc->on_event_arg);
	while (list) {
		struct job *next = list->next;
		job_finish(list);
		list = next;
	}
}

static void *worker_main(void *arg)
{
	struct call_service *svc = arg;
	pthread_setname_np(pthread_self(), "cp-worker");
	pthread_mutex_lock(&svc->mu);
	for (;;) {
		while (!svc->head && !svc->stopping)
			pthread_cond_wait(&svc->cv, &svc->mu);
		if (!svc->head)
			break;
		/* take everything queued: it becomes one group commit */
		struct job *list = svc->head;
		svc->head = svc->tail = NULL;
		pthread_mutex_unlock(&svc->mu);
		run_batch(svc, list);
		pthread_mutex_lock(&svc->mu);
	}
	pthread_mutex_unlock(&svc->mu);
	return NULL;
}

int svc_worker_start(struct call_service *svc)
{
	if (pthread_create(&svc->worker, NULL, worker_main, svc))
		return -1;
	svc->running = true;
	return 0;
}

void svc_worker_stop(struct call_service *svc)
{
	if (!svc->running)
		return;
	pthread_mutex_lock(&svc->mu);
	svc->stopping = true;
	pthread_cond_signal(&svc->cv);
	pthread_mutex_unlock(&svc->mu);
	pthread_join(svc->worker, NULL);
	svc->running = false;
}

void svc_post(struct call_service *svc, struct job *j)
{
	pthread_mutex_lock(&svc->mu);
	if (!svc->running) {
		pthread_mutex_unlock(&svc->mu);
		run_job(svc, j);
		return;
	}
	if (svc->tail)
		svc->tail->next = j;
	else
		svc->head = j;
	svc->tail = j;
	pthread_cond_signal(&svc->cv);
	pthread_mutex_unlock(&svc->mu);
}
