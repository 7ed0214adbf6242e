/*
 * Bearer tokens for the transport (see http_int.h): a static token, a
 * token file read again when it changes and after a 401, or OAuth client
 * credentials fetched from a token endpoint and renewed before the JWT's
 * expiry. One thread fetches; the others wait for it or use the old token
 * while it lasts. Every token read or fetched goes into the redaction.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "b64.h"
#include "clock.h"
#include "config.h"
#include "errbuf.h"
#include "http_int.h"
#include "redact.h"

/* A client secret and the form it takes in a request body. */
static int
redact_secret(struct redact *r, const char *secret)
{
	char *esc;
	int rc;

	if (secret == NULL)
		return 0;
	if ((esc = http_escape_dup(secret)) == NULL)
		return -ENOMEM;
	rc = redact_add(r, REDACT_CLIENT_SECRET, secret);
	if (rc == 0)
		rc = redact_add(r, REDACT_CLIENT_SECRET, esc);
	http_wipe_free(esc);
	return rc;
}

int
auth_init(struct auth *a, const struct http_options *o, char *err, size_t errlen)
{
	int n = http_opt_set(o->token) + http_opt_set(o->token_file) + http_opt_set(o->token_url);

	pthread_mutex_init(&a->lock, NULL);
	clk_cond_init(&a->cond);

	if (n > 1)
		return errbuf_set(err, errlen, -EINVAL,
		                  "give one of token, token_file and token_url, not several");
	if (!http_opt_set(o->token_url) &&
	    (http_opt_set(o->client_id) || http_opt_set(o->client_secret) ||
	     http_opt_set(o->client_secret_file)))
		return errbuf_set(err, errlen, -EINVAL, "client credentials need a token_url");
	if (http_opt_set(o->token)) {
		if (http_has_control(o->token) || strchr(o->token, ' ') != NULL)
			return errbuf_set(err, errlen, -EINVAL,
			                  "the token holds a space or a control character");
		a->kind = AUTH_STATIC;
		a->token = strdup(o->token);
		if (a->token == NULL || redact_add(a->redact, REDACT_TOKEN, a->token) != 0)
			return errbuf_set(err, errlen, -ENOMEM, "out of memory");
		return 0;
	}
	if (http_opt_set(o->token_file)) {
		a->kind = AUTH_FILE;
		a->stale = true;
		return http_opt_dup(o->token_file, &a->path)
		           ? 0
		           : errbuf_set(err, errlen, -ENOMEM, "out of memory");
	}
	if (http_opt_set(o->token_url)) {
		if (!http_opt_set(o->client_id))
			return errbuf_set(err, errlen, -EINVAL, "token_url needs a client_id");
		if (http_opt_set(o->client_secret) == http_opt_set(o->client_secret_file))
			return errbuf_set(
			    err, errlen, -EINVAL,
			    "token_url needs one of client_secret and client_secret_file");
		if (strncmp(o->token_url, "http://", 7) != 0 &&
		    strncmp(o->token_url, "https://", 8) != 0)
			return errbuf_set(err, errlen, -EINVAL,
			                  "token_url must be an http:// or https:// URL");
		a->kind = AUTH_OAUTH;
		if (!http_opt_dup(o->token_url, &a->token_url) ||
		    !http_opt_dup(o->client_id, &a->client_id) ||
		    !http_opt_dup(o->client_secret, &a->client_secret) ||
		    !http_opt_dup(o->client_secret_file, &a->secret_file) ||
		    redact_secret(a->redact, a->client_secret) != 0)
			return errbuf_set(err, errlen, -ENOMEM, "out of memory");
	}
	return 0;
}

void
auth_free(struct auth *a)
{
	http_wipe_free(a->token);
	free(a->path);
	free(a->token_url);
	free(a->client_id);
	http_wipe_free(a->client_secret);
	free(a->secret_file);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
}

/* Reads the token file when it is new, changed or stale. Under a->lock. */
static int
auth_file_refresh(struct auth *a, struct http_error *e)
{
	struct stat st;
	char *tok = NULL, msg[256];
	int rc;

	if (stat(a->path, &st) == 0) {
		if (!a->stale && a->token != NULL && st.st_dev == a->dev && st.st_ino == a->ino &&
		    st.st_size == a->size && st.st_mtim.tv_sec == a->mtime.tv_sec &&
		    st.st_mtim.tv_nsec == a->mtime.tv_nsec)
			return 0;
	} else if (a->token != NULL && !a->stale) {
		/* gone for a moment, e.g. while being replaced: keep the token we have */
		return 0;
	}
	rc = config_read_secret(a->path, &tok, msg, sizeof(msg));
	if (rc != 0 && a->token != NULL && !a->stale) {
		/* caught half-written (empty, say): use the token we have, and
		 * read the file again next time */
		a->size = -1;
		return 0;
	}
	if (rc != 0) {
		/* whatever is wrong with the file, the call is unauthenticated */
		http_fail(e, EACCES, "token_file: %s", msg);
		e->exit_code = 3;
		return -EACCES;
	}
	/* the file as read (a rewrite between stat and read is seen next time) */
	if (stat(a->path, &st) == 0) {
		a->dev = st.st_dev;
		a->ino = st.st_ino;
		a->size = st.st_size;
		a->mtime = st.st_mtim;
	}
	a->stale = false;
	if (redact_add(a->redact, REDACT_TOKEN, tok) != 0) {
		config_secret_free(tok);
		return http_fail(e, ENOMEM, "out of memory");
	}
	if (a->token == NULL || strcmp(a->token, tok) != 0) {
		http_wipe_free(a->token);
		a->token = tok;
		a->gen++;
	} else {
		config_secret_free(tok);
	}
	return 0;
}

/* The lifetime a JWT's exp claim gives, in ms from now; -1 when none. */
static int64_t
jwt_lifetime(const char *tok)
{
	const char *p = strchr(tok, '.'), *q;
	unsigned char *raw;
	size_t n, len;
	json_t *claims, *exp;
	int64_t life = -1;
	bool found = false;

	if (p == NULL || (q = strchr(p + 1, '.')) == NULL)
		return -1;
	n = (size_t)(q - p - 1);
	raw = malloc(B64_DECODED_MAX(n) + 1);
	if (raw == NULL)
		return -1;
	if (b64_decode(p + 1, n, raw, &len) == 0) {
		claims = json_loadb((const char *)raw, len, 0, NULL);
		exp = json_object_get(claims, "exp");
		if (json_is_number(exp)) {
			life =
			    (int64_t)(json_number_value(exp) * 1000) - (int64_t)time(NULL) * 1000;
			found = true;
		}
		json_decref(claims);
	}
	free(raw);
	if (!found)
		return -1;
	return life < 0 ? 0 : life;
}

/* A number, or a string holding one ("3600"): seconds. -1 when absent or bad. */
static int64_t
json_seconds(const json_t *v)
{
	if (json_is_number(v))
		return (int64_t)json_number_value(v);
	if (json_is_string(v)) {
		char *end;
		long long n = strtoll(json_string_value(v), &end, 10);

		if (end != json_string_value(v) && *end == '\0')
			return n;
	}
	return -1;
}

/* Copies an OAuth error body's "error: description" into msg, cleaned. */
static bool
oauth_error(const char *body, size_t len, char *msg, size_t size)
{
	json_t *j = json_loadb(body ? body : "", len, 0, NULL);
	const char *code = json_string_value(json_object_get(j, "error"));
	const char *desc = json_string_value(json_object_get(j, "error_description"));

	if (code == NULL) {
		json_decref(j);
		return false;
	}
	snprintf(msg, size, "%s%s%s", code, desc ? ": " : "", desc ? desc : "");
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	json_decref(j);
	return true;
}

/*
 * The client credentials grant: a new token in *tok (http_wipe_free() it) and
 * its lifetime in ms (-1: unknown). No lock held: a transfer.
 */
static int
oauth_fetch(struct http_client *c, int64_t deadline, struct http_abort *ab, char **tok,
            int64_t *life, struct http_error *e)
{
	struct auth *a = &c->auth;
	struct http_response r = {0};
	struct http_request rq = {0};
	struct http_error te;
	char *secret = NULL, *id_esc = NULL, *sec_esc = NULL, *form = NULL, msg[ERRMAP_MSG_MAX];
	const char *at;
	json_t *j = NULL;
	int64_t left = deadline > 0 ? deadline - clk_mono_ms() : c->deadline_ms, expires_in;
	int rc;

	*tok = NULL;
	*life = -1;
	if (left <= 0)
		return http_fail(e, ETIMEDOUT, "no time left to fetch a token");
	if (a->client_secret != NULL) {
		secret = strdup(a->client_secret);
		if (secret == NULL)
			return http_fail(e, ENOMEM, "out of memory");
	} else {
		rc = config_read_secret(a->secret_file, &secret, msg, sizeof(msg));
		if (rc != 0) {
			http_fail(e, EACCES, "client_secret_file: %s", msg);
			e->exit_code = 3;
			return -EACCES;
		}
	}
	/* known before it is sent: the answer may echo it */
	if (redact_secret(a->redact, secret) != 0) {
		http_wipe_free(secret);
		return http_fail(e, ENOMEM, "out of memory");
	}
	id_esc = http_escape_dup(a->client_id);
	sec_esc = http_escape_dup(secret);
	if (id_esc == NULL || sec_esc == NULL ||
	    asprintf(&form, "grant_type=client_credentials&client_id=%s&client_secret=%s", id_esc,
	             sec_esc) < 0) {
		form = NULL;
		rc = http_fail(e, ENOMEM, "out of memory");
		goto out;
	}
	rq.call = "token";
	rq.method = "POST";
	rq.body = form;
	rq.body_len = strlen(form);
	rq.content_type = "application/x-www-form-urlencoded";
	/* resending client credentials is harmless */
	rq.flags = HTTP_IDEMPOTENT | HTTP_NO_AUTH;
	rq.deadline_ms = left;
	rq.max_body = TOKEN_BODY_MAX;
	rq.abort = ab;
	atomic_fetch_add(&c->n_token_fetches, 1);
	rc = http_call_run(c, a->token_url, &rq, false, &r, &te);
	if (rc != 0) {
		/* e keeps the name of the call that needed the token */
		if (!oauth_error(r.body, r.len, msg, sizeof(msg)))
			snprintf(msg, sizeof(msg), "%s", te.message);
		e->err = te.err;
		e->http_status = te.http_status;
		e->grpc_code = te.grpc_code;
		e->exit_code = te.exit_code;
		if (te.http_status == 400 || te.http_status == 401 || te.http_status == 403) {
			e->err = EACCES;
			e->exit_code = 3;
			rc = -EACCES;
		}
		/* in case the endpoint echoes what it got */
		redact_apply(a->redact, msg, sizeof(msg));
		snprintf(e->message, sizeof(e->message), "token endpoint: %.480s", msg);
		goto out;
	}
	j = json_loadb(r.body, r.len, 0, NULL);
	at = json_string_value(json_object_get(j, "access_token"));
	if (at == NULL || at[0] == '\0' || http_has_control(at) || strchr(at, ' ') != NULL) {
		rc = http_fail(e, EACCES, "token endpoint: the answer has no usable access_token");
		e->exit_code = 3;
		goto out;
	}
	*tok = strdup(at);
	if (*tok == NULL) {
		rc = http_fail(e, ENOMEM, "out of memory");
		goto out;
	}
	expires_in = json_seconds(json_object_get(j, "expires_in"));
	*life = expires_in >= 0 ? expires_in * 1000 : jwt_lifetime(at);
	rc = 0;
out:
	if (j != NULL) {
		/* the token's copy in the parsed tree goes with it; wipe the text */
		json_decref(j);
	}
	if (r.body != NULL)
		explicit_bzero(r.body, r.len);
	http_response_clear(&r);
	http_wipe_free(form);
	http_wipe_free(sec_esc);
	free(id_esc);
	http_wipe_free(secret);
	return rc;
}

/* A token for the next attempt: *tok (http_wipe_free() it) and its generation. */
int
auth_get(struct http_client *c, int64_t deadline, struct http_abort *ab, char **tok, unsigned *gen,
         struct http_error *e)
{
	struct auth *a = &c->auth;
	char *fresh;
	int64_t life, now;
	int rc = 0;

	*tok = NULL;
	pthread_mutex_lock(&a->lock);
	if (a->kind == AUTH_FILE)
		rc = auth_file_refresh(a, e);
	if (a->kind != AUTH_OAUTH)
		goto copy;
	for (;;) {
		now = clk_mono_ms();
		if (a->token != NULL && !a->stale && (a->refresh_at == 0 || now < a->refresh_at))
			goto copy;
		if (!a->fetching)
			break;
		/* another thread is fetching: its old token will do while it lasts */
		if (a->token != NULL && !a->stale && now < a->expires_at)
			goto copy;
		if (deadline > 0) {
			if (clk_cond_wait_until(&a->cond, &a->lock, deadline) == ETIMEDOUT) {
				rc = http_fail(e, ETIMEDOUT, "no token within the deadline");
				goto copy;
			}
		} else {
			pthread_cond_wait(&a->cond, &a->lock);
		}
	}
	a->fetching = true;
	pthread_mutex_unlock(&a->lock);
	rc = oauth_fetch(c, deadline, ab, &fresh, &life, e);
	pthread_mutex_lock(&a->lock);
	a->fetching = false;
	pthread_cond_broadcast(&a->cond);
	if (rc == 0) {
		int64_t margin = c->margin_ms;

		now = clk_mono_ms();
		if (redact_add(a->redact, REDACT_TOKEN, fresh) != 0) {
			/* a token that could leak into a message is not used */
			http_wipe_free(fresh);
			rc = http_fail(e, ENOMEM, "out of memory");
			goto copy;
		}
		if (a->token == NULL || strcmp(a->token, fresh) != 0) {
			http_wipe_free(a->token);
			a->token = fresh;
			a->gen++;
		} else {
			http_wipe_free(fresh);
		}
		a->stale = false;
		if (life < 0) {
			a->refresh_at = a->expires_at = 0;
		} else {
			if (margin > life / 2)
				margin = life / 2;
			a->expires_at = now + life;
			/* a token already expired is used once, not cached */
			a->refresh_at = life > 0 ? now + life - margin : now;
			if (a->refresh_at == 0)
				a->refresh_at = 1;
		}
	}
copy:
	if (rc == 0 && a->token != NULL) {
		*tok = strdup(a->token);
		*gen = a->gen;
		if (*tok == NULL)
			rc = http_fail(e, ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* After a 401 with the token of generation gen: read or fetch a new one
 * before the next use (unless another thread already has). */
void
auth_invalidate(struct http_client *c, unsigned gen)
{
	pthread_mutex_lock(&c->auth.lock);
	if (c->auth.gen == gen)
		c->auth.stale = true;
	pthread_mutex_unlock(&c->auth.lock);
}
