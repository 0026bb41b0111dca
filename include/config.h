/*
 * config.h - the configuration: libconfuse file -> immutable, validated
 * snapshot. A reload builds a new snapshot; threads hold a reference to the
 * snapshot they started with (config_acquire/config_release).
 */
#ifndef OBM_CONFIG_H
#define OBM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "cidr.h"

#define OBM_DEFAULT_CONFIG "/etc/outbound-milter/outbound-milter.conf"

enum obm_mode { MODE_ENFORCE, MODE_MONITOR };
enum on_error { ON_ERROR_ACCEPT, ON_ERROR_TEMPFAIL };
enum limit_scope { SCOPE_SENDER, SCOPE_SENDER_DOMAIN, SCOPE_CLIENT, SCOPE_GLOBAL };
enum limit_count { COUNT_RECIPIENTS, COUNT_MESSAGES };
enum msg_class { CLASS_PERSONAL, CLASS_BULK, CLASS_SPAM_RISK, CLASS_COUNT };
#define CLASS_ALL ((1u << CLASS_COUNT) - 1)
enum class_action { ACTION_ACCEPT, ACTION_TAG, ACTION_HOLD, ACTION_TEMPFAIL, ACTION_REJECT };

struct strlist {
	char **v;
	size_t n;
};

/* network NAME { hourly = ...; burst = ... } inside a limit section */
struct limit_override {
	char *network;
	long hourly;
	long burst;
};

/* one `limit NAME { ... }` section */
struct limit_rule {
	char *name;
	enum limit_scope scope;
	long hourly;       /* units per sliding 3600 s, >= 0 */
	long burst;        /* units per sliding burst_window, >= 0 */
	long burst_window; /* seconds, 1..3600 */
	enum limit_count count;
	unsigned classes; /* bit (1u << enum msg_class); CLASS_ALL by default */
	struct limit_override *overrides;
	size_t n_overrides;
};

/* one `network NAME { domains = ...; mx = ... }` section */
struct network_def {
	char *name;
	struct strlist domains; /* lowercase A-labels, no trailing dot */
	struct strlist mx;
};

struct redis_conf {
	char *host;
	int port;
	char *socket; /* unix socket path; wins over host/port when non-empty */
	char *user;
	char *password_file;
	/* outboundctl's reading commands only; the daemon never uses them */
	char *readonly_user;
	char *readonly_password_file;
	int db;
	char *prefix;
	int timeout_ms;
	enum on_error on_error;
};

/* limit sections a configuration may have (a message's per-rule state fits a bitmask) */
#define LIMITS_MAX 64

struct classify_conf {
	long personal_max_recipients;
	long personal_max_hourly;
	double min_known_ratio;
	bool require_unsubscribe;
	bool require_aligned_from;
	char *header;
	bool add_header;
	bool header_detail; /* the header carries rcpts, known and velocity too */
};

struct config {
	char *file; /* path it was loaded from */

	char *socket;
	int socket_mode; /* parsed from the octal string */
	char *socket_group;
	char *pid_file;
	enum obm_mode mode;
	char *user;
	char *group;

	struct strlist outbound_daemons;
	struct cidr_list outbound_networks;
	struct strlist local_domains;  /* normalised domains */
	struct strlist exempt_senders; /* "user@dom" exact, or "dom"/"@dom" whole domain */
	struct cidr_list exempt_clients;
	char *subaddress_separator; /* "" disables stripping */
	bool learn_inbound;
	bool learn_outbound;
	long relationship_ttl; /* days */
	long relationship_max;
	bool mx_grouping;
	long mx_cache_ttl;      /* seconds */
	int dns_timeout_ms;     /* the longest an MX lookup waits for DNS */
	char *dns_server;       /* "" system resolvers, "IP", "IP:PORT", "[IPv6]:PORT" */
	long reservation_ttl;   /* seconds an unconfirmed reservation lives */
	long log_max_entries;   /* decision log (Redis stream) length, 0 = no log */

	struct redis_conf redis;
	struct classify_conf classify;
	enum class_action class_action[CLASS_COUNT];

	struct network_def *networks;
	size_t n_networks;
	struct limit_rule *limits;
	size_t n_limits;

	unsigned long generation; /* set by config_install, changes on every reload */
	int refs; /* owned by config_acquire/config_release */
};

/* Called once per problem found while loading. line is 0 when unknown. */
typedef void (*config_report_fn)(void *arg, const char *file, int line,
				 bool is_error, const char *msg);

/*
 * Parse and validate FILE. Returns a new snapshot (refs = 1) or NULL when
 * there was at least one error; every error and warning goes to REPORT.
 */
struct config *config_load(const char *file, config_report_fn report, void *arg);

/*
 * config_load_flags FLAGS. CONFIG_CREDENTIALS_UNOPENED: the password files
 * are checked (absolute path, regular file, mode) but not opened, so that
 * one this process cannot read is no error: the caller opens the one it
 * uses (outboundctl, run by users who may read only the read-only one).
 * Without it password_file must be readable now, as the daemon needs it.
 */
#define CONFIG_CREDENTIALS_UNOPENED 1u
struct config *config_load_flags(const char *file, unsigned flags, config_report_fn report,
				 void *arg);
void config_free(struct config *cfg);

/* Default reporter: "FILE:LINE: error|warning: msg" on stderr. */
void config_report_stderr(void *arg, const char *file, int line, bool is_error,
			  const char *msg);

/* The process-wide current snapshot. install takes over the caller's ref. */
void config_install(struct config *cfg);
struct config *config_acquire(void); /* +1 ref on the current snapshot */
void config_release(struct config *cfg); /* -1 ref; frees at 0 */

/* helpers shared with other modules */
const char *class_name(enum msg_class c);
const char *action_name(enum class_action a);
bool strlist_contains(const struct strlist *l, const char *s);

#endif
