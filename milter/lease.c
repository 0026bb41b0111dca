/*
 * lease.c - the reservations of transactions still running, kept pending
 * while their transaction lives.
 *
 * reserve.lua drops a reservation that stayed pending past its expiry:
 * that is how the units of a milter that died stop counting. A client
 * that takes longer than reservation_ttl between RCPT and the end of its
 * message must not get the same treatment, or a few slow sessions could
 * each reserve a full hour's budget in turn. So every open transaction
 * lists the units it holds here, and one thread renews their expiry every
 * third of reservation_ttl: only a dead milter's units ever expire.
 *
 * The list is guarded by one mutex, taken once per held recipient and at
 * the end of each transaction; the thread copies the units under it and
 * talks to Redis without it. A renewal that races with a commit or a
 * release finds the member gone and leaves it alone (renew.lua).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "lease.h"
#include "log.h"

#define LEASE_MIN_INTERVAL_MS 1000

static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lease *lease_head; /* open leases, newest first */
static size_t lease_units;       /* units in all of them */

static pthread_mutex_t lease_run_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lease_wake;
static pthread_t lease_tid;
static bool lease_running, lease_stopping;

static void *lease_oom(void *p)
{
	if (p == NULL) {
		log_msg(LOG_CRIT, NULL, "out of memory");
		abort();
	}
	return p;
}

/*
 * A copy of U whose strings are its own, in one block that starts with the
 * network's name (lease_unit_free frees it).
 */
static struct store_unit lease_copy(const struct store_unit *u)
{
	size_t ln = strlen(u->network) + 1, lr = strlen(u->rule) + 1;
	size_t lm = strlen(u->member) + 1;
	char *p = lease_oom(malloc(ln + lr + u->scope_len + 1 + lm));
	struct store_unit c = *u;

	c.network = memcpy(p, u->network, ln);
	c.rule = memcpy(p + ln, u->rule, lr);
	c.member = memcpy(p + ln + lr, u->member, lm);
	memcpy(p + ln + lr + lm, u->scope, u->scope_len);
	p[ln + lr + lm + u->scope_len] = '\0';
	c.scope = p + ln + lr + lm;
	return c;
}

static void lease_unit_free(struct store_unit *u)
{
	free((char *)u->network);
}

void lease_hold(struct lease *l, const struct store_unit *units, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&lease_lock);
	if (l->n + n > l->cap) {
		size_t cap = (l->n + n) * 2;

		l->units = lease_oom(reallocarray(l->units, cap, sizeof(*l->units)));
		l->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		l->units[l->n++] = lease_copy(&units[i]);
	if (l->n == n) { /* it held nothing: list it */
		l->prev = NULL;
		l->next = lease_head;
		if (lease_head != NULL)
			lease_head->prev = l;
		lease_head = l;
	}
	lease_units += n;
	pthread_mutex_unlock(&lease_lock);
}

void lease_clear(struct lease *l)
{
	if (l->n == 0)
		return;
	pthread_mutex_lock(&lease_lock);
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		lease_head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	lease_units -= l->n;
	pthread_mutex_unlock(&lease_lock);
	for (size_t i = 0; i < l->n; i++)
		lease_unit_free(&l->units[i]);
	l->n = 0;
}

void lease_free(struct lease *l)
{
	lease_clear(l);
	free(l->units);
	l->units = NULL;
	l->cap = 0;
}

/* copies of every open lease's units into *OUT (caller frees with lease_units_free) */
static size_t lease_snapshot(struct store_unit **out)
{
	size_t n = 0;

	pthread_mutex_lock(&lease_lock);
	*out = lease_units > 0 ? malloc(lease_units * sizeof(**out)) : NULL;
	if (*out != NULL)
		for (const struct lease *l = lease_head; l != NULL; l = l->next)
			for (size_t i = 0; i < l->n; i++)
				(*out)[n++] = lease_copy(&l->units[i]);
	pthread_mutex_unlock(&lease_lock);
	return n;
}

static void lease_units_free(struct store_unit *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lease_unit_free(&u[i]);
	free(u);
}

int lease_renew_all(void)
{
	struct store_unit *units;
	size_t n = lease_snapshot(&units);
	struct config *cfg;
	int rv = STORE_OK;

	if (n == 0) {
		free(units);
		return STORE_OK;
	}
	if ((cfg = config_acquire()) != NULL) {
		rv = store_renew(cfg, units, n);
		config_release(cfg);
	}
	lease_units_free(units, n);
	return rv;
}

/* a third of the current reservation_ttl, at least LEASE_MIN_INTERVAL_MS */
static long long lease_interval_ms(void)
{
	struct config *cfg = config_acquire();
	long long ms = cfg != NULL ? cfg->reservation_ttl * 1000LL / 3 : 10000;

	config_release(cfg);
	return ms < LEASE_MIN_INTERVAL_MS ? LEASE_MIN_INTERVAL_MS : ms;
}

static void *lease_thread(void *arg)
{
	bool failing = false;

	(void)arg;
	pthread_mutex_lock(&lease_run_lock);
	while (!lease_stopping) {
		struct timespec at;
		long long ms = lease_interval_ms();

		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += (time_t)(ms / 1000);
		at.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		while (!lease_stopping &&
		       pthread_cond_timedwait(&lease_wake, &lease_run_lock, &at) != ETIMEDOUT)
			;
		if (lease_stopping)
			break;
		pthread_mutex_unlock(&lease_run_lock);
		if (lease_renew_all() != STORE_OK) {
			if (!failing)
				log_msg(LOG_WARNING, NULL,
					"could not renew the reservations of open transactions: %s; "
					"they are counted again when committed",
					log_quote(store_last_error()));
			failing = true;
		} else {
			failing = false;
		}
		pthread_mutex_lock(&lease_run_lock);
	}
	pthread_mutex_unlock(&lease_run_lock);
	store_disconnect();
	return NULL;
}

int lease_start(void)
{
	pthread_condattr_t ca;
	int rv = -1;

	pthread_mutex_lock(&lease_run_lock);
	if (lease_running) {
		pthread_mutex_unlock(&lease_run_lock);
		return 0;
	}
	if (pthread_condattr_init(&ca) == 0 &&
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&lease_wake, &ca) == 0) {
		lease_stopping = false;
		if (pthread_create(&lease_tid, NULL, lease_thread, NULL) == 0) {
			lease_running = true;
			rv = 0;
		} else {
			pthread_cond_destroy(&lease_wake);
		}
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_unlock(&lease_run_lock);
	return rv;
}

void lease_stop(void)
{
	pthread_mutex_lock(&lease_run_lock);
	if (!lease_running) {
		pthread_mutex_unlock(&lease_run_lock);
		return;
	}
	lease_stopping = true;
	pthread_cond_signal(&lease_wake);
	pthread_mutex_unlock(&lease_run_lock);
	pthread_join(lease_tid, NULL);
	pthread_mutex_lock(&lease_run_lock);
	lease_running = false;
	pthread_cond_destroy(&lease_wake);
	pthread_mutex_unlock(&lease_run_lock);
}
