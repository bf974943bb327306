/* memory_routes.c — /v1/memories: the agents' memories of the caller's tenant (common/memory.h).
 *
 *   GET  /v1/memories?q=TEXT[&plan=UUID][&k=N][&mode=hybrid|fulltext|vector]   viewer
 *        {"memories": [{"id", "score", "content"}]}: global, tenant and (with plan) plan memories
 *   GET  /v1/memories/{id}                                                      viewer
 *        one memory with provenance and history (superseded_by, forgotten_at); 404 when it is
 *        neither the caller's tenant's nor global
 *   POST /v1/memories/{id}/forget  body {"reason": "..."} (optional)             responder
 *        200 {"id", "forgotten": true}; 404 when the tenant has no live memory with that id
 *        (global memories are not forgotten through a tenant's token)
 * Searches embed the query with the configured embedder (memory.embed_url, else hashing); an
 * embeddings endpoint is called while the loop waits, like the PostgreSQL reads (README.md). */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "embedder.h"
#include "gateway.h"
#include "ids.h"
#include "memory.h"

/* The tenant whose memories the caller sees: its token's (--no-auth: the configured tenant). */
static const char *memory_tenant(const gw_caller_t *caller)
{
	return caller->read_tenant ? caller->read_tenant : caller->tenant;
}

static bool memory_id(struct evhttp_request *req, const char *seg, int64_t *ret)
{
	char *end;
	long long v = strtoll(seg, &end, 10);
	if (!*seg || *end || v <= 0) {
		gw_reply_error(req, 404, "not_found", "no memory \"%.32s\": ids are positive integers",
			       seg);
		return false;
	}
	*ret = v;
	return true;
}

void gw_api_memories_search(gw_t *gw, struct evhttp_request *req)
{
	gw_caller_t caller;
	struct evkeyvalq q;
	const char *text, *plan, *mode_s, *k_s;
	lh_memory_mode_t mode = LH_MEMORY_HYBRID;
	lh_embedder_t *emb = NULL;
	lh_memory_hit_t *hits = NULL;
	lh_error_t err = {0};
	long k = 10;
	int n = 0;
	lh_id_t pid;

	if (!gw_auth(gw, req, GW_VIEWER, &caller) || !gw_query_params(req, "q|plan|k|mode", &q))
		return;
	text = evhttp_find_header(&q, "q");
	plan = evhttp_find_header(&q, "plan");
	mode_s = evhttp_find_header(&q, "mode");
	k_s = evhttp_find_header(&q, "k");
	if (!text || !*text) {
		gw_reply_error(req, 400, "invalid_query", "q (the text to search for) is required");
		goto out_free_q;
	}
	if (plan && lh_uuid_parse(plan, &pid) != LH_OK) {
		gw_reply_error(req, 400, "invalid_query", "plan must be a plan id (UUID)");
		goto out_free_q;
	}
	if (k_s) {
		char *end;
		k = strtol(k_s, &end, 10);
		if (!*k_s || *end || k < 1 || k > 100) {
			gw_reply_error(req, 400, "invalid_query", "k must be an integer in 1..100");
			goto out_free_q;
		}
	}
	if (mode_s && !strcmp(mode_s, "fulltext"))
		mode = LH_MEMORY_FULLTEXT;
	else if (mode_s && !strcmp(mode_s, "vector"))
		mode = LH_MEMORY_VECTOR;
	else if (mode_s && strcmp(mode_s, "hybrid")) {
		gw_reply_error(req, 400, "invalid_query", "mode must be hybrid, fulltext or vector");
		goto out_free_q;
	}
	if (!gw_pg(gw, req))
		goto out_free_q;
	if (lh_embedder_new_from_config(&gw->cfg.common, &emb, &err) != LH_OK) {
		gw_reply_error(req, 500, "internal", "%s", err.msg);
		goto out_free_q;
	}
	if (lh_memory_search_with(gw->pg, emb, memory_tenant(&caller), plan, text, (int)k, mode,
				  &hits, &n, &err) != LH_OK) {
		gw_reply_error(req, 503, err.code == LH_ERR_PG || err.code == LH_ERR_UNAVAILABLE
						 ? "postgresql_unavailable" : "embedder_unavailable",
			       "%s", err.msg);
	} else {
		json_t *body = json_pack("{s:o}", "memories", lh_memory_hits_json(hits, n));
		gw_reply_json(req, 200, body);
		json_decref(body);
	}
	lh_memory_hits_free(hits, n);
	lh_embedder_free(emb);
out_free_q:
	evhttp_clear_headers(&q);
}

void gw_api_memory_get(gw_t *gw, struct evhttp_request *req, const char *id_seg)
{
	gw_caller_t caller;
	lh_error_t err = {0};
	int64_t id;
	json_t *j;
	lh_err_t rc;
	if (!gw_auth(gw, req, GW_VIEWER, &caller) || !memory_id(req, id_seg, &id) || !gw_pg(gw, req))
		return;
	rc = lh_memory_get_json(gw->pg, memory_tenant(&caller), id, &j, &err);
	if (rc == LH_ERR_NOT_FOUND) {
		gw_reply_error(req, 404, "not_found", "no memory %" PRId64, id);
	} else if (rc != LH_OK) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
	} else {
		gw_reply_json(req, 200, j);
		json_decref(j);
	}
}

void gw_api_memory_forget(gw_t *gw, struct evhttp_request *req, const char *id_seg)
{
	gw_caller_t caller;
	lh_error_t err = {0};
	int64_t id;
	json_t *body = NULL, *reason;
	lh_err_t rc;
	if (!gw_auth(gw, req, GW_RESPONDER, &caller) || !memory_id(req, id_seg, &id))
		return;
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0 &&
	    !(body = gw_read_body(gw, req)))
		return;
	reason = body ? json_object_get(body, "reason") : NULL;
	if ((body && json_object_size(body) != (reason ? 1u : 0u)) ||
	    (reason && !json_is_string(reason))) {
		gw_reply_error(req, 400, "invalid_body", "the body may hold only \"reason\", a string");
		goto out;
	}
	if (!gw_pg(gw, req))
		goto out;
	rc = lh_memory_forget(gw->pg, memory_tenant(&caller), id,
			      reason ? json_string_value(reason) : NULL, &err);
	if (rc == LH_ERR_NOT_FOUND) {
		gw_reply_error(req, 404, "not_found", "%s", err.msg);
	} else if (rc != LH_OK) {
		gw_reply_error(req, 503, "postgresql_unavailable", "%s", err.msg);
	} else {
		json_t *r = json_pack("{s:I, s:b}", "id", (json_int_t)id, "forgotten", 1);
		gw_reply_json(req, 200, r);
		json_decref(r);
	}
out:
	json_decref(body);
}
